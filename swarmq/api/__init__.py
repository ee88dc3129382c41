"""swarmq's public Python API: what the CLI calls, and what a notebook or script can call the same way.

Each function connects to the configured services (`settings`), does one thing, and returns plain data;
printing is the caller's business. Heavy libraries are imported inside the functions that need them, so that
importing this package (and starting the CLI) stays cheap. The functions live by concept in `services`,
`lifecycle` (an experiment's life) and `reports`; this package is their one public name.
"""

from __future__ import annotations

from swarmq.api.lifecycle import (
    Say,
    cancel,
    delete,
    enqueue,
    experiments,
    load_experiment,
    pause,
    rebuild_state,
    resume,
    retry_failed,
)
from swarmq.api.reports import (
    export,
    import_eval,
    plot,
    progress,
    replay,
    results,
    score_humaneval,
    state,
    workers,
)
from swarmq.api.services import (
    connect,
    database,
    db_status,
    db_upgrade,
    get_settings,
    rebuild_aggregates,
    run_worker,
    service_urls,
    stop_services,
)

__all__ = [
    "Say",
    "cancel",
    "connect",
    "database",
    "db_status",
    "db_upgrade",
    "delete",
    "enqueue",
    "experiments",
    "export",
    "get_settings",
    "import_eval",
    "load_experiment",
    "pause",
    "plot",
    "progress",
    "rebuild_aggregates",
    "rebuild_state",
    "replay",
    "results",
    "resume",
    "retry_failed",
    "run_worker",
    "score_humaneval",
    "service_urls",
    "state",
    "stop_services",
    "workers",
]
