"""Pages as HTML: the package's Jinja2 templates over the view models. Two ways to link: the served pages'
URLs (`ServedLinks`) and anchors inside one file (`BundleLinks`), so both render the same templates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from swarmq.view.models import ExperimentPage, ExperimentSummary, JobPage


class Links(Protocol):
    def home(self) -> str: ...
    def experiment(self, name: str, **filters: Any) -> str: ...
    def job(self, job_id: int | str) -> str: ...


@dataclass(frozen=True)
class ServedLinks:
    def home(self) -> str:
        return "/"

    def experiment(self, name: str, **filters: Any) -> str:
        query = urlencode({k: v for k, v in filters.items() if v is not None})
        return f"/experiments/{quote(name)}" + (f"?{query}" if query else "")

    def job(self, job_id: int | str) -> str:
        return f"/jobs/{quote(str(job_id))}"


@dataclass(frozen=True)
class BundleLinks:
    def home(self) -> str:
        return "#experiment"

    def experiment(self, name: str, **filters: Any) -> str:
        return "#experiment"

    def job(self, job_id: int | str) -> str:
        return f"#job-{job_id}"


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("swarmq.view", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=False,
    )


def experiments_html(rows: list[ExperimentSummary], links: Links) -> str:
    live = any(not r.complete for r in rows)
    columns = list(dict.fromkeys(k for r in rows for k in r.counts))  # the counts `swarmq experiments` gives
    return (
        environment()
        .get_template("experiments.html")
        .render(experiments=rows, columns=columns, links=links, live=live)
    )


def experiment_html(page: ExperimentPage, links: Links) -> str:
    return (
        environment().get_template("experiment.html").render(page=page, links=links, live=not page.complete)
    )


def job_html(job: JobPage, links: Links) -> str:
    live = job.status in ("pending", "queued", "running")
    return environment().get_template("job.html").render(job=job, links=links, live=live)


def error_html(status: int, message: str, links: Links) -> str:
    return (
        environment()
        .get_template("error.html")
        .render(status=status, message=message, links=links, live=False)
    )


def bundle_html(page: ExperimentPage, jobs: list[JobPage], written: str) -> str:
    """The experiment page and every job page in one file: no script or style from elsewhere, so it opens
    offline; a job's link shows its section in place."""
    return (
        environment()
        .get_template("bundle.html")
        .render(page=page, jobs=jobs, links=BundleLinks(), live=False, written=written)
    )
