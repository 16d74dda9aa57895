"""What every request passes before the app sees it (pure ASGI, so endpoints still see disconnects).

- While draining after SIGTERM: 503 with Retry-After.
- Host header must name this server (a foreign Host is how DNS rebinding reaches a loopback server),
  and a browser's Origin must be this server's own: a web page the user visits cannot POST here,
  not even a `text/plain` "simple" request that needs no CORS preflight. `--allow-host` and
  `--allow-origin` widen both.
- Bearer token on /v1/* when an API key is set, compared in constant time.
- The body is read here, up to the limit and no further: a chunked upload without Content-Length
  is refused with 413 as soon as it passes the limit, not after it has been read whole.
"""

from __future__ import annotations

import hmac

from audioflamingo.serve.errors import error

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def host_name(value: str) -> str:
    """'example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    def __init__(self, app, cfg, state: dict):
        self.app, self.cfg, self.state = app, cfg, state
        self.hosts = {h.lower().strip("[]") for h in cfg.allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in cfg.allowed_origins}
        self.key = f"Bearer {cfg.api_key}".encode() if cfg.api_key else None

    def host_ok(self, host: str) -> bool:
        return "*" in self.hosts or host_name(host) in self.hosts

    def origin_ok(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if "*" in self.origins or origin in self.origins:
            return True
        scheme, _, netloc = origin.partition("://")  # same origin: the page this server served
        return scheme in ("http", "https") and netloc == host.lower() and self.host_ok(host)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, origin = headers.get("host", ""), headers.get("origin")
        response = None
        if self.state["draining"]:
            response = error(503, "server is shutting down", headers={"Retry-After": "5", "Connection": "close"})
        elif not self.host_ok(host):
            response = error(403, f"Host {host!r} is not served here (see serve --allow-host)", code="forbidden_host")
        elif origin is not None and not self.origin_ok(origin, host):
            response = error(
                403, f"cross-origin request from {origin!r} refused (see serve --allow-origin)", code="forbidden_origin"
            )
        elif (
            scope["path"].startswith("/v1/")
            and self.key is not None
            and not hmac.compare_digest(headers.get("authorization", "").encode("latin-1"), self.key)
        ):
            response = error(401, "missing or wrong bearer token (Authorization: Bearer KEY)", code="invalid_api_key")
        if response is not None:
            return await response(scope, receive, send)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = await self._read_body(headers, receive)
            if isinstance(body, int):
                return await error(
                    413,
                    f"request body is over the limit of {self.cfg.max_body_bytes} bytes"
                    f"{f' ({body} bytes)' if body >= 0 else ''}",
                    code="request_too_large",
                    headers={"Connection": "close"},
                )(scope, receive, send)
            receive = _replay(body, receive)
        self.state["active"] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.state["active"] -= 1

    async def _read_body(self, headers: dict, receive) -> bytes | int:
        """The whole body, or (too large) its declared length, or -1 when it had none."""
        limit = self.cfg.max_body_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return int(length)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return -1
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then disconnects, as the app would have seen them

    return replayed
