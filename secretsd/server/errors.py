"""The one JSON error shape, ``{"error": {"code", "message"}}``, for every failure."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from secretsd.errors import SecretsdError, error_class_for_status

__all__ = ["error_response", "install_error_handlers", "secretsd_error_response"]

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        content=orjson.dumps({"error": {"code": code, "message": message}}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def secretsd_error_response(error: SecretsdError) -> Response:
    """The response for one of our errors (the fast path sends the very same)."""
    headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers = {"Retry-After": str(retry_after)}
    return error_response(error.http_status, error.code, error.message, headers)


def _describe_validation(error: RequestValidationError) -> str:
    """Say which field is wrong and why, never echoing the submitted value."""
    problems = []
    for item in error.errors():
        location = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        kind = item.get("type", "")
        if kind == "json_invalid":
            problems.append("the body is not valid JSON")
        elif location == "body" and kind in ("model_attributes_type", "dict_type", "missing"):
            problems.append(
                "the body must be a JSON object sent with 'Content-Type: application/json'"
            )
        elif kind == "extra_forbidden":
            problems.append(f"{location}: unknown field")
        else:
            problems.append(f"{location}: {item.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    async def secretsd_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, SecretsdError)
        return secretsd_error_response(error)

    async def validation_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return error_response(422, "validation_failed", _describe_validation(error))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        cls = error_class_for_status(error.status_code)
        code = cls.code if cls.http_status == error.status_code else "http_error"
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no such endpoint {request.url.path!r}; see /docs for the API"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path!r}; see /docs"
        return error_response(error.status_code, code, message)

    async def unexpected(request: Request, error: Exception) -> Response:
        request_id = request.scope.get("secretsd.request_id", "")
        log.error(
            "internal error on %s %s (request %s): %s",
            request.method,
            request.url.path,
            request_id,
            type(error).__name__,
            exc_info=error,
        )
        return error_response(
            500, "internal", f"internal error (request id {request_id}); see the server log"
        )

    app.add_exception_handler(SecretsdError, secretsd_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
