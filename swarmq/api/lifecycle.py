"""An experiment's life: read its file, enqueue it, list, pause, resume, cancel, retry, delete it, and
rebuild its swarm state from Postgres."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmq.api.services import connect, get_settings
from swarmq.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from swarmq.experiment.config import ExperimentConfig
    from swarmq.queue.lifecycle import Change
    from swarmq.queue.producer import EnqueueResult

Say = Callable[[str], None]


def load_experiment(path: Path, *, name: str | None = None, limit: int | None = None) -> ExperimentConfig:
    """Read and validate an experiment file, with the command line's overrides."""
    from pydantic import ValidationError

    from swarmq.experiment.config import DatasetConfig
    from swarmq.experiment.file import load_config

    cfg = load_config(path, {"name": name} if name is not None else None)
    if limit is not None:
        if limit < 1:
            raise ConfigError("--limit must be at least 1")
        try:  # validated as the file's own dataset.limit is, bounds included
            dataset = DatasetConfig.model_validate({**cfg.dataset.model_dump(), "limit": limit})
        except ValidationError as exc:
            raise ConfigError(f"--limit: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        cfg = cfg.model_copy(update={"dataset": dataset})
    return cfg


def enqueue(
    cfg: ExperimentConfig, progress: Say | None = None, *, model_on_workers: bool = False
) -> EnqueueResult:
    """Create the experiment and publish its jobs, or resume it (same name, same configuration). Each local
    model file must be here (or in SWARMQ_MODELS_DIR or SWARMQ_HOME/models) unless ``model_on_workers``
    says it lives only on the worker machines: a typo is refused now, not found by every worker later."""
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
            f"{cfg.name}: model file not found: {', '.join(missing)} (looked in the current directory, "
            "SWARMQ_MODELS_DIR and SWARMQ_HOME/models); pass --model-on-workers if it exists only where "
            "workers run"
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
    from swarmq.streams.sync import StreamSync
    from swarmq.swarm.redis import SwarmStore

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


def rebuild_state(experiment: str) -> int:
    """Drop and rebuild every stream's Redis state from the outcomes in Postgres; returns the stream count."""
    from swarmq.report.swarm_state import streams_of
    from swarmq.streams.sync import StreamSync
    from swarmq.swarm.redis import SwarmStore

    svc = connect()
    with svc.sessions() as session:
        cfg, streams = streams_of(session, experiment)
    sync = StreamSync(svc.sessions, SwarmStore(svc.redis))
    for stream in streams:
        sync.swarm.delete(stream, cfg.conditions[stream.condition].agents)
        sync.rebuild(stream, cfg)
    return len(streams)
