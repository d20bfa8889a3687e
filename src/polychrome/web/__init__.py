"""The interactive hint page (``polychrome serve``): a FastAPI app and its static page."""

from polychrome.web.app import create_app
from polychrome.web.limits import Limits

__all__ = ["Limits", "create_app"]
