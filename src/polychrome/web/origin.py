"""Who may talk to the server: the Host a request names and, for a request that changes something, the
page it comes from.

A server on 127.0.0.1 is still reachable from any web page the same person opens: that page can POST to
it (a cross-origin "simple" request needs no CORS permission to be *sent*), and through DNS rebinding a
foreign name can resolve to 127.0.0.1 and read the answers too. So the Host header must name this server
(refused: 400), and a POST/PUT/PATCH/DELETE that carries an ``Origin`` must come from this server's own
page (refused: 403). Scripts and ``curl`` send no Origin and are not affected.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_name(netloc: str) -> str | None:
    """The host name of ``host[:port]`` (``[v6]:port`` too), lower case; None when it does not parse."""
    try:
        return urlsplit(f"//{netloc}").hostname
    except ValueError:
        return None


class SameOrigin:
    """ASGI middleware: the Host check (when ``allowed_hosts`` is given; ``"*"`` in it admits any) and the
    cross-origin write check. Refusals are JSON ``{"detail": one line}`` like every other error."""

    def __init__(self, app, allowed_hosts: Iterable[str] | None = None):
        self.app = app
        hosts = None if allowed_hosts is None else {h.strip("[]").lower() for h in allowed_hosts}
        self.allowed_hosts = None if hosts is None or "*" in hosts else hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.allowed_hosts is not None and host_name(host) not in self.allowed_hosts:
            shown = ", ".join(sorted(self.allowed_hosts))
            return await self._refuse(scope, receive, send, 400,
                                      f"Host {host!r} is not this server's (it answers to: {shown})")  # fmt: skip
        origin = headers.get(b"origin")
        if origin is not None and scope["method"] not in _SAFE_METHODS:
            origin = origin.decode("latin-1")
            netloc = urlsplit(origin).netloc if origin != "null" else ""
            if not netloc or netloc.lower() != host.lower():
                return await self._refuse(scope, receive, send, 403,
                                          f"cross-origin request refused: a page from {origin} cannot change "
                                          f"anything on this server ({host})")  # fmt: skip
        return await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope, receive, send, status: int, detail: str):
        return await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def serve_hosts(listen: str, extra: Iterable[str] = ()) -> list[str] | None:
    """The Host names a server listening on ``listen`` answers to: that address (with ``localhost``,
    ``127.0.0.1`` and ``::1`` for a loopback one) plus ``extra``; None (any) for a wildcard address
    (0.0.0.0, ::) without ``extra``, as its names cannot be known."""
    import ipaddress

    extra = list(extra)
    try:
        ip = ipaddress.ip_address(listen.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None and ip.is_unspecified:
        return extra or None
    hosts = [listen.strip("[]").lower(), *extra]
    if listen.lower() == "localhost" or (ip is not None and ip.is_loopback):
        hosts += ["localhost", "127.0.0.1", "::1"]
    return list(dict.fromkeys(hosts))
