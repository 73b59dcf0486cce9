"""The FastAPI app: embed, search, items and their media, health, metrics, and the web page at `/`."""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from openbind.errors import OpenBindInputError
from openbind.modalities import IMAGE_TOWER, TEXT_TOWER, get_input
from openbind.serve.batching import BatchSettings
from openbind.serve.http import ApiError, BodyTooLarge, Guard, token_matches
from openbind.serve.limits import LimitExceeded, Limits
from openbind.serve.metrics import Metrics
from openbind.serve.requests import embed_inputs, read_body, search_request
from openbind.serve.service import SearchService

STATIC = files("openbind.serve") / "static"
DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's own files, served without the token like the page's
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class ServeSettings:
    """`token`: the bearer token every endpoint but the health checks and the page's own files requires (None:
    none, for a loopback server); `cors_origins`: origins allowed to call the API from a browser (none by
    default); `decode_workers`: threads decoding uploads; `threads`: torch's threads inside each forward pass
    (default 1: the server runs requests in parallel instead); `device`: where the model runs (default: CUDA
    when there is one, except for int8 and ONNX, which run on the CPU); `precision`, `runtime`: `create_model`'s
    ("int8": dynamic int8 in torch; runtime "onnx": an export from `openbind export onnx` on onnxruntime)."""

    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    batching: BatchSettings = field(default_factory=BatchSettings)
    decode_workers: int = 2
    threads: int = 1
    device: str | None = None
    precision: str = "fp32"
    runtime: str | None = None


def create_app(index: str | os.PathLike, model: Any = None, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The server of one index folder. `model`: the index's model at another path (checked to be the same
    weights), or a loaded model object with `.config`, `.modalities` and `.encode` (a runtime of the same weights,
    taken on trust: nothing can check an object's weights against the index); default the recorded one."""
    metrics = Metrics()
    service = SearchService(
        index, model, batching=settings.batching, limits=settings.limits, decode_workers=settings.decode_workers,
        threads=settings.threads, device=settings.device, precision=settings.precision, runtime=settings.runtime,
        on_batch=lambda tower, size: metrics.batch_size.labels(tower).observe(size),
        on_queue=lambda tower, depth: metrics.queue_depth.labels(tower).set(depth),
    )  # fmt: skip
    limits = settings.limits

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            service.close()

    # fastapi-offline: FastAPI with /docs (Swagger UI) and /redoc on script and style files shipped in its wheel
    # and served here, so the API docs work with no network; Swagger UI's online spec validator is turned off.
    app = FastAPIOffline(
        title="openbind", lifespan=lifespan, static_url=DOCS_ASSETS, swagger_ui_parameters={"validatorUrl": None},
        description="Search one index across images, video, text, audio, depth, thermal and IMU: embed inputs, "
        "compose weighted queries (texts, uploads, indexed items), fetch items and their files by id.",
    )  # fmt: skip
    app.state.service = service
    app.state.metrics = metrics
    bearer = HTTPBearer(auto_error=False, description="the server's --token")  # shown in /docs' Authorize

    async def authorized(request: Request, _: Any = Depends(bearer)) -> None:  # async: no thread hop per request
        if settings.token is not None and not token_matches(request.headers.get("authorization"), settings.token):
            raise ApiError(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    in_flight = 0

    async def guarded(work):
        """Run embed or search work under the concurrency limit (429 beyond it) and the request timeout."""
        nonlocal in_flight
        if in_flight >= limits.max_concurrent:
            raise ApiError(429, f"busy: {in_flight} requests in progress; retry shortly", headers={"Retry-After": "1"})
        in_flight += 1
        metrics.in_flight.set(in_flight)
        try:
            return await asyncio.wait_for(work(), limits.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the request took longer than {limits.timeout_s:g} s") from None
        finally:
            in_flight -= 1
            metrics.in_flight.set(in_flight)

    _error_handlers(app, metrics)
    protected = [Depends(authorized)]

    @app.get("/healthz", tags=["health"], summary="the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="the index is open and the model loaded")
    async def readyz() -> JSONResponse:
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @app.get("/metrics", tags=["health"], dependencies=protected, summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/info", dependencies=protected, summary="the towers, input kinds and limits of this server")
    async def info() -> dict[str, Any]:
        return await service.info()

    @app.post("/v1/embed", dependencies=protected, summary="unit embeddings of texts and files",
              openapi_extra=_body_doc(EMBED_EXAMPLE, "a part per file, named after its kind or 'file'"))  # fmt: skip
    async def embed(request: Request) -> dict[str, Any]:
        async def work():
            body, fields, uploads = await read_body(request, limits)
            inputs = embed_inputs(service, body, fields, uploads)
            kinds = list(inputs)
            done = await asyncio.gather(*(service.embed(kind, *inputs[kind]) for kind in kinds))
            return {"dim": done[0].shape[1], "embeddings": {k: e.tolist() for k, e in zip(kinds, done)}}

        return await guarded(work)

    @app.post("/v1/search", dependencies=protected, summary="the items nearest a weighted query",
              openapi_extra=_body_doc(SEARCH_EXAMPLE, "a 'json' field with the JSON body, and a part per file"))  # fmt: skip
    async def search(request: Request) -> dict[str, Any]:
        async def work():
            started = asyncio.get_running_loop().time()
            body, _, uploads = await read_body(request, limits)
            terms, k, modalities = search_request(service, body, uploads)
            results = await service.search(terms, k, modalities)
            took = (asyncio.get_running_loop().time() - started) * 1000
            return {"results": results, "took_ms": round(took, 2)}

        return await guarded(work)

    @app.get("/v1/items/{item_id}", dependencies=protected, summary="one item's metadata")
    async def item(item_id: str) -> dict[str, Any]:
        number = _item_id(item_id)
        try:
            return await service.item(number)
        except KeyError:
            raise ApiError(404, f"no item {number} in the index", item_id) from None

    @app.get("/v1/items/{item_id}/media", dependencies=protected, summary="an item's file, streamed")
    async def media(item_id: str) -> FileResponse:
        number = _item_id(item_id)
        try:
            path = await service.media_path(number)
        except KeyError:
            raise ApiError(404, f"no item {number} in the index", item_id) from None
        except PermissionError as error:
            raise ApiError(403, str(error), item_id) from None
        except FileNotFoundError as error:
            raise ApiError(410, str(error), item_id) from None
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type, headers={
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"})  # fmt: skip

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), headers={"Content-Security-Policy": PAGE_POLICY})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])  # fmt: skip
    app.add_middleware(Guard, metrics=metrics, max_request_bytes=limits.max_request_bytes)
    return app


def _item_id(text: str) -> int:
    """Items are named by their number only: never a path."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ApiError(400, "an item id is a number; files are served by id only", text[:100])
    return int(text)


REJECTED = {400: "bad_input", 401: "unauthorized", 413: "too_large", 415: "bad_input", 422: "bad_input", 429: "busy",
            504: "timeout"}  # fmt: skip


def _error_handlers(app: FastAPI, metrics: Metrics) -> None:
    def answer(error: ApiError) -> JSONResponse:
        if error.status in REJECTED:
            metrics.rejected.labels(REJECTED[error.status]).inc()
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return answer(error)

    @app.exception_handler(OpenBindInputError)
    async def bad_input(request: Request, error: OpenBindInputError) -> JSONResponse:
        too_large = isinstance(error, LimitExceeded)
        name = error.item if isinstance(error.item, str) else None
        return answer(ApiError(413 if too_large else 400, error.reason, name[:200] if name else None))

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, error: BodyTooLarge) -> JSONResponse:
        return answer(ApiError(413, "request body over the size limit"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return answer(ApiError(error.status_code, str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return answer(ApiError(422, "; ".join(str(e.get("msg")) for e in error.errors())))


TEXT = get_input(TEXT_TOWER).name
EMBED_EXAMPLE = {TEXT: ["a dog barking", "a kettle"]}
SEARCH_EXAMPLE = {
    "query": [{TEXT: "a kettle", "weight": 1.0}, {"item": 3, "weight": -0.5}],
    "k": 10,
    "modalities": [IMAGE_TOWER],
}


def _body_doc(example: dict[str, Any], multipart: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}, "example": example},
        "multipart/form-data": {"schema": {"type": "object", "description": multipart}},
    }}}  # fmt: skip
