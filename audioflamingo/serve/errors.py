"""Every error the server sends has OpenAI's shape, so clients written for OpenAI or vLLM can show it:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "top_p", "code": null}}

`param` names the request field at fault (null when no single field is); `code` is a short string
for the cases a client may branch on (model_not_found, unsupported_parameter, ...), else null.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    499: "invalid_request_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None, headers: dict | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error(
    status: int, message: str, param: str | None = None, code: str | None = None, headers: dict | None = None
) -> JSONResponse:
    return ApiError(status, message, param, code, headers).response()


def install_handlers(app) -> None:
    """Unknown routes, wrong methods and anything unexpected answer in the same shape."""
    from starlette.exceptions import HTTPException

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return exc.response()

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        if exc.status_code == 404:
            return error(404, f"unknown URL: {request.method} {request.url.path}", code="unknown_url")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed")
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):  # logged by uvicorn; the client gets JSON, not text
        return error(500, f"internal error ({type(exc).__name__})")
