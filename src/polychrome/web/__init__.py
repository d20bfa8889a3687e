"""The interactive hint page (``polychrome serve``): a FastAPI app and its static page."""

from polychrome.web.app import Limits, create_app

__all__ = ["Limits", "create_app"]
