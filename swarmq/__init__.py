"""swarmq: a distributed job queue for multi-GPU LLM experiment runs.

The packages follow the data path, and imports flow one way (top to bottom):

    cli/         the `swarmq` command, a thin layer over `api`
    api          the public Python API: enqueue(), run_worker(), results(), export(), ...
    worker/      one process per GPU: bootstrap, the job runner, housekeeping, shutdown, supervisor
    report/      results, statistics, renderings, exports, plots, progress, replay (reads Postgres)
    queue/       the broker, the producer, the jobs-table state machine, the reaper, retries
    swarm/ model/ benchmarks/ experiment/   swarm state and routing; the model; benchmark plugins; the
                 experiment file, its dataset and job plan
    store/       Postgres: engine, tables, migrations, embedded servers
    errors, settings, keys   one exception hierarchy, one settings object, every shared name
"""

__version__ = "0.1.0"
