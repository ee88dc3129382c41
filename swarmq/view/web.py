"""`swarmq view`: the pages served over HTTP by Starlette (ASGI; run by uvicorn), read-only.

Each request opens one session, builds its page (`pages`) and renders it (`render`). Endpoints are plain
functions, which Starlette runs in its thread pool, so a slow query never blocks another page.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from swarmq.errors import ConfigError, UnknownExperiment
from swarmq.view import pages, render
from swarmq.view.filters import JobFilter

LINKS = render.ServedLinks()


def make_app(sessions: sessionmaker[Session]) -> Starlette:
    """The viewer's ASGI app over ``sessions`` (injected: the CLI's connection, or a test's)."""

    def home(request: Request) -> Response:
        with sessions() as session:
            return HTMLResponse(render.experiments_html(pages.experiments(session), LINKS))

    def experiment(request: Request) -> Response:
        where = JobFilter.parse(request.query_params)
        with sessions() as session:
            page = pages.experiment_page(session, request.path_params["name"], where)
        return HTMLResponse(render.experiment_html(page, LINKS))

    def job(request: Request) -> Response:
        with sessions() as session:
            page = pages.job_page(session, int(request.path_params["job_id"]))
        return HTMLResponse(render.job_html(page, LINKS))

    def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse(render.error_html(404, str(exc), LINKS), status_code=404)

    def bad_request(request: Request, exc: Exception) -> Response:
        return HTMLResponse(render.error_html(400, str(exc), LINKS), status_code=400)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/experiments/{name}", experiment),
            Route("/jobs/{job_id:int}", job),
        ],
        exception_handlers={UnknownExperiment: not_found, ConfigError: bad_request},
    )
