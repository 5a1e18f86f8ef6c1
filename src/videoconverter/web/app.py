"""The FastAPI application: the HTTP API under ``/api``, health and metrics, and the dashboard's static files."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from videoconverter import __version__
from videoconverter.config import Config
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.web import media, routes, uploads
from videoconverter.web.docs import STATIC_DIR, install_docs
from videoconverter.web.errors import error_response, install_handlers
from videoconverter.web.guard import RequestGuard
from videoconverter.web.limits import UploadSlots
from videoconverter.web.live import LiveJobs, queue_depths
from videoconverter.web.media import OutputInspector


def create_app(config: Config, svc: Services | None = None) -> FastAPI:
    """The app for ``config``. It opens the backends at start-up (unless ``svc`` is given) and closes what it
    opened at shutdown. Every request passes :class:`~videoconverter.web.guard.RequestGuard` first."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = svc is None
        services: Services = svc if svc is not None else await run_in_threadpool(_open_provisioned, config)
        app.state.svc = services
        app.state.inspector = OutputInspector(services)
        app.state.live = LiveJobs(services)
        app.state.upload_slots = UploadSlots(config.web.max_concurrent_uploads)
        app.state.live.start()
        try:
            yield
        finally:
            await app.state.live.stop()
            if opened:
                services.close()

    app = FastAPI(
        title="videoconverter",
        version=__version__,
        description="Upload videos, watch their conversion, download the renditions.",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves it from the package, not from a CDN
        redoc_url=None,
    )
    app.state.config = config
    app.add_middleware(RequestGuard, settings=config.web)
    install_handlers(app)
    install_docs(app, token_required=bool(config.web.api_token))
    app.include_router(uploads.router)
    app.include_router(routes.router)
    app.include_router(media.router)

    @app.get("/healthz", tags=["operations"])
    async def healthz(request: Request) -> JSONResponse:
        """200 ``{"status": "ok"}`` when the job store and the broker answer, else 503 with the reason."""
        services: Services = request.app.state.svc
        try:
            await run_in_threadpool(lambda: (services.jobs.find("healthz/probe"), queue_depths(services)))
        except Exception as exc:
            return error_response(503, "unhealthy", f"{type(exc).__name__}: {exc}")
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "index.html"), headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app


def _open_provisioned(config: Config) -> Services:
    """Open the backends and provision (idempotent, as every worker does), so uploads land in a bucket."""
    services = open_services(config)
    try:
        provision(services)
    except BaseException:
        services.close()
        raise
    return services
