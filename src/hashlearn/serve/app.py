"""The FastAPI application: routes, authentication, JSON errors.

Every answer is JSON. Errors are ``{"error": "..."}`` naming the field
(``"queries[3]: has 2 bytes; ..."``), plus ``"detail"`` (loc, msg, type per problem) for
validation errors: 400 for a body that is not JSON, 401 for a missing or wrong API key,
403 for writes on a read-only server, 404/405 for unknown paths and methods, 409 when
the index file changed under a writable server, 413 for a body or a request over the
budget, 422 for invalid fields.

Request bodies are read here (not by FastAPI's body parameters) so that any
``Content-Type`` is taken as JSON like the previous service did, the body is counted
against the limit as it streams in, and pydantic parses the JSON bytes directly (its
fastest path); the OpenAPI schema still names each request model.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hashlearn.serve import schemas
from hashlearn.serve.service import SearchService, ServiceError, _field_path

logger = logging.getLogger("hashlearn.serve")

_ERRORS = {status: {"model": schemas.ErrorResponse} for status in (400, 401, 413, 422)}


def _json(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")).encode("utf-8"), status_code=status,
                    media_type="application/json", headers=headers)


def _error(status: int, message: str, detail: list | None = None, headers: dict | None = None) -> Response:
    payload = {"error": message}
    if detail is not None:
        payload["detail"] = detail
    return _json(payload, status, headers)


def _validation_response(error: ValidationError, model: type[BaseModel]) -> Response:
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    if any(p["type"] == "json_invalid" for p in problems):
        return _error(400, f"the request body is not valid JSON: {problems[0]['msg']}.")
    detail, messages = [], []
    for problem in problems:
        loc, kind, msg = list(problem["loc"]), problem["type"], problem["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if kind == "extra_forbidden":
            msg = f"unknown key; {model.__name__} takes {', '.join(model.model_fields)}"
        elif kind == "model_type" or not loc:
            msg, loc = "the request body must be a JSON object", ["body"]
        detail.append({"loc": loc, "msg": msg, "type": kind})
        messages.append(f"{_field_path(loc)}: {msg}")
    return _error(422, "; ".join(messages[:5]) + (f"; and {len(messages) - 5} more" if len(messages) > 5 else ""), detail)


def _body_schema(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def create_app(service: SearchService, *, api_key: str | None = None, max_body_bytes: int = 4 << 20) -> FastAPI:
    """The FastAPI app serving ``service``; ``api_key`` (if given) is required on every
    path but ``/health`` and the docs, as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``."""
    from hashlearn import __version__

    if not isinstance(service, SearchService):
        raise TypeError(f"service must be a SearchService, got {type(service).__name__}.")
    if api_key is not None and (not isinstance(api_key, str) or len(api_key) < 12):
        raise ValueError("api_key must be a string of at least 12 characters (a short key is guessed quickly).")
    app = FastAPI(title="hashlearn search service", version=__version__, redoc_url=None,
                  description="k-NN and range search over learned binary codes; see docs/serve.md.")
    app.state.service = service
    executor = ThreadPoolExecutor(max_workers=service.workers, thread_name_prefix="hashlearn-serve")
    app.state.executor = executor
    key = None if api_key is None else api_key.encode("utf-8")

    def authorize(request: Request) -> None:
        """Every route but /health calls this first (a plain call: an HTTP middleware would
        cost more than the search itself)."""
        if key is None:
            return
        given = request.headers.get("x-api-key")
        if given is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else None
        if given is None or not hmac.compare_digest(given.encode("utf-8", "replace"), key):
            raise ServiceError(401, "missing or wrong API key: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'.")

    async def body_of(request: Request, model: type[BaseModel]):
        authorize(request)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise ServiceError(413, f"request body exceeds the {max_body_bytes}-byte limit.")
            chunks.append(chunk)
        try:
            return model.model_validate_json(b"".join(chunks))
        except ValidationError as error:
            raise _Invalid(error, model) from None

    async def run_job(job):
        if job.inline:
            return _call(job.run)
        return await asyncio.get_running_loop().run_in_executor(executor, _call, job.run)

    @app.exception_handler(_Invalid)
    async def on_invalid(request: Request, error: _Invalid):
        return _validation_response(error.error, error.model)

    @app.exception_handler(ServiceError)
    async def on_service_error(request: Request, error: ServiceError):
        message = str(error)
        detail = None
        if error.loc is not None:
            prefix = _field_path(error.loc) + ": "
            detail = [{"loc": list(error.loc), "msg": message[len(prefix):] if message.startswith(prefix) else message,
                       "type": "value_error"}]
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return _error(error.status, message, detail, headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException):
        path, method = request.url.path, request.method
        if error.status_code == 404:
            message = f"no endpoint {path}; endpoints: {', '.join(_endpoints(app))} (API description at /docs)."
        elif error.status_code == 405:
            allowed = {name.lower(): value for name, value in (error.headers or {}).items()}.get("allow", "")
            message = f"{path} does not accept {method}; allowed: {allowed}."
        else:
            message = str(error.detail)
        return _error(error.status_code, message, headers=error.headers)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception):  # the server answers and keeps running
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=error)
        return _error(500, f"internal error: {type(error).__name__} (logged by the server).")

    @app.get("/health", response_model=schemas.HealthResponse, summary="liveness and size")
    async def health():
        return _json(service.health())

    @app.get("/info", response_model=schemas.InfoResponse, responses=_ERRORS, summary="the served index, model and limits")
    async def info(request: Request):
        authorize(request)
        return _json({**service.info(), "auth": key is not None})

    @app.post("/search", response_model=schemas.SearchResponse, responses=_ERRORS,
              openapi_extra=_body_schema(schemas.SearchRequest), summary="k nearest neighbours of each query")
    async def search(request: Request):
        return _json(await run_job(service.search(await body_of(request, schemas.SearchRequest))))

    @app.post("/range_search", response_model=schemas.RangeSearchResponse, responses=_ERRORS,
              openapi_extra=_body_schema(schemas.RangeSearchRequest), summary="everything within a Hamming radius")
    async def range_search(request: Request):
        return _json(await run_job(service.range_search(await body_of(request, schemas.RangeSearchRequest))))

    @app.post("/encode", response_model=schemas.EncodeResponse, responses=_ERRORS,
              openapi_extra=_body_schema(schemas.EncodeRequest), summary="the model's codes for inputs, texts or images")
    async def encode(request: Request):
        return _json(await run_job(service.encode(await body_of(request, schemas.EncodeRequest))))

    @app.post("/add", response_model=schemas.WriteResponse, responses=_ERRORS,
              openapi_extra=_body_schema(schemas.AddRequest), summary="add items and save the index (--writable)")
    async def add(request: Request):
        body = await body_of(request, schemas.AddRequest)
        return _json(await asyncio.get_running_loop().run_in_executor(executor, _call, lambda: service.add(body)))

    @app.post("/remove", response_model=schemas.WriteResponse, responses=_ERRORS,
              openapi_extra=_body_schema(schemas.RemoveRequest), summary="remove items by id and save the index (--writable)")
    async def remove(request: Request):
        body = await body_of(request, schemas.RemoveRequest)
        return _json(await asyncio.get_running_loop().run_in_executor(executor, _call, lambda: service.remove(body)))

    return app


class _Invalid(Exception):
    def __init__(self, error: ValidationError, model: type[BaseModel]):
        super().__init__(str(error))
        self.error, self.model = error, model


def _call(function):
    """Run a job; the index's and the model's refusals of an input become 422s."""
    try:
        return function()
    except ServiceError:
        raise
    except (ValueError, TypeError) as error:
        raise ServiceError(422, str(error)) from None


def _endpoints(app: FastAPI) -> list[str]:
    out = []
    for route in app.routes:
        methods = sorted(getattr(route, "methods", ()) - {"HEAD"})
        if methods and getattr(route, "include_in_schema", False):
            out.extend(f"{method} {route.path}" for method in methods)
    return out

