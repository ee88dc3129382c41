"""Figure 3: enqueue ~10k jobs (164 HumanEval issues × 4 relaxed conditions × 15 replicates = 9,840), then resume
the same experiment after 9,000 are done (marked by SQL, with outcome rows).

swarmq is timed twice: the CLI as a user runs it (`swarmq enqueue FILE`: interpreter start, dataset read, the
model-file and schema checks, rows, release, publish) and `swarmq.queue.producer.enqueue` in process (rows,
release and publish only). With the default `max_spread` (4) an enqueue publishes only the jobs of the first
4 positions of each of the 60 streams (240); the rest are released as those finish. A third CLI run sets
`max_spread` to the issue count, so that every job is published at once: the most an enqueue can send.

The baseline is the floor any producer pays for the same effect: COPY of the same job rows and one Celery
`send_task` per job that swarmq published, on one connection, pipelined with kombu's `Producer.batch()` where
kombu has it (resume: select the unfinished ids and send them).
"""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bench.env import BenchDB, fresh_database
from bench.figures import Context
from bench.measure import FigureResult, Row, check, timed
from bench.workload import NULL_MODEL, enqueue, experiment, humaneval_issues, write_config

KEY = "3"
TITLE = "enqueue ~10k jobs, and resume with 9,000 done"
DONE = 9000
CONDITIONS = {
    "baseline": {"agents": 1, "router": "single"},
    "control": {"agents": 3, "router": "random", "accumulate": True, "ordering": "relaxed"},
    "experimental": {"agents": 3, "router": "affinity", "accumulate": True, "ordering": "relaxed"},
    "round_robin": {"agents": 3, "router": "round_robin", "accumulate": True, "ordering": "relaxed"},
}
FLOOR_QUEUE = "bench.floor"
JOB_COLUMNS = (
    "experiment_id",
    "issue_id",
    "condition",
    "replicate",
    "instance_id",
    "position",
    "seq",
    "status",
    "attempts",
    "published_at",
    "model_key",
)


def _published(stdout: str) -> int:
    m = re.search(r"\((\d+) published", stdout)
    return int(m.group(1)) if m else -1


def mark_done(bench: BenchDB, experiment_name: str, count: int) -> None:
    """The first ``count`` jobs (publish order) become done, each with a small outcome row."""
    with bench.connect() as conn:
        conn.execute(
            """
            UPDATE jobs SET status = 'done', attempts = 1, started_at = now(), finished_at = now()
            WHERE id IN (SELECT j.id FROM jobs j JOIN experiments e ON e.id = j.experiment_id
                         WHERE e.name = %s ORDER BY j.seq LIMIT %s)
            """,
            (experiment_name, count),
        )
        conn.execute(
            """
            INSERT INTO outcomes (job_id, completion, finish_reason, prompt_tokens, completion_tokens, worker,
                model_name, model_sha256, llama_cpp_version, prompt, prompt_sha256, chat, sampling, agent_id,
                task_type, state_version, staleness, example_ids, update_applied, success, success_rule,
                score_detail)
            SELECT j.id, '    return 1', 'stop', 100, 4, 'bench', 'null', repeat('0', 64), 'null', '', repeat('0', 64),
                   false, '{}'::jsonb, 0, i.task_type, 0, 0, '[]'::jsonb, true, true, 'non_empty', '{}'::jsonb
            FROM jobs j JOIN issues i ON i.id = j.issue_id WHERE j.status = 'done'
            """
        )


def floor_enqueue(bench: BenchDB, source_experiment: str) -> float:
    """COPY the same job rows under a copy of the experiment, and send one message per job that swarmq published
    (its queued jobs; no worker has run)."""
    from swarmq.queue.broker import make_app

    with bench.connect() as conn:
        exp_id = conn.execute(
            "INSERT INTO experiments (name, config, config_hash, benchmark, model_key) "
            "SELECT name || '-floor', config, config_hash, benchmark, model_key FROM experiments WHERE name = %s "
            "RETURNING id",
            (source_experiment,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO issues (experiment_id, instance_id, task_type, category, repo, problem, data) "
            "SELECT %s, instance_id, task_type, category, repo, problem, data FROM issues i "
            "WHERE i.experiment_id = (SELECT id FROM experiments WHERE name = %s)",
            (exp_id, source_experiment),
        )
        rows = conn.execute(
            "SELECT i2.id, j.condition, j.replicate, j.instance_id, j.position, j.seq, j.model_key, j.status "
            "FROM jobs j JOIN issues i2 ON i2.instance_id = j.instance_id AND i2.experiment_id = %s "
            "WHERE j.experiment_id = (SELECT id FROM experiments WHERE name = %s) ORDER BY j.seq",
            (exp_id, source_experiment),
        ).fetchall()
        conn.commit()
    app = make_app(bench.redis_url)
    sent = {seq for *_, seq, _, status in rows if status == "queued"}

    def work() -> None:
        with bench.connect() as conn:
            with conn.cursor() as cur, cur.copy(f"COPY jobs ({', '.join(JOB_COLUMNS)}) FROM STDIN") as copy:
                for issue_id, cond, rep, iid, pos, seq, key, _ in rows:
                    copy.write_row((exp_id, issue_id, cond, rep, iid, pos, seq, "queued", 0, "now", key))
            ids = [
                i
                for i, seq in conn.execute(
                    "SELECT id, seq FROM jobs WHERE experiment_id = %s ORDER BY seq", (exp_id,)
                )
                if seq in sent
            ]
            conn.commit()
        _send(app, ids)

    seconds, _ = timed(work)
    bench.redis().delete(FLOOR_QUEUE)
    return seconds


def floor_resume(bench: BenchDB, experiment_name: str) -> float:
    from swarmq.queue.broker import make_app

    app = make_app(bench.redis_url)

    def work() -> None:
        with bench.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT j.id FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
                    "WHERE e.name = %s AND j.status = 'queued' ORDER BY j.seq",
                    (experiment_name,),
                )
            ]
        _send(app, ids)

    seconds, _ = timed(work)
    bench.redis().delete(FLOOR_QUEUE)
    return seconds


def _send(app: Any, ids: list[int]) -> None:
    """One send_task per job on one connection; pipelined through kombu's ``Producer.batch()`` (kombu ≥ 5.7)
    when there is one, since that is the cheapest a plain Celery producer can do."""
    with (
        app.producer_or_acquire() as producer,
        producer.batch() if hasattr(producer, "batch") else nullcontext(),
    ):
        for i in ids:
            app.send_task("bench.floor", args=[i], queue=FLOOR_QUEUE, producer=producer, task_id=f"floor-{i}")


def _clear_queues(bench: BenchDB) -> None:
    r = bench.redis()
    for key in r.scan_iter("swarmq.*"):
        r.delete(key)


def stand_in_model(directory: Path) -> str:
    """A file where the experiment names its model: `swarmq enqueue` refuses a model file that is not there, and
    the timed CLI should run that check as a user's enqueue does. Nothing loads it (no worker runs here); its
    file name gives the queue name, the same as `NULL_MODEL`'s."""
    path = directory / Path(NULL_MODEL).name
    path.write_bytes(b"GGUF" + bytes(60))
    return str(path)


def run(ctx: Context) -> FigureResult:
    keys = (
        "cli",
        "api",
        "floor",
        "cli_resume",
        "api_resume",
        "floor_resume",
        "cli_all",
        "floor_all",
        "help",
        "python",
    )
    col: dict[str, list[float]] = {k: [] for k in keys}
    info: list[dict[str, Any]] = []
    model = stand_in_model(ctx.workdir)
    # Warm what the later repeats find warm (the issues read, the producer's imports, the connections), so that
    # the first in-process timing is not the only one to pay for them.
    issues = len(humaneval_issues())
    import swarmq.queue.producer  # noqa: F401

    with fresh_database(ctx.endpoints) as bench:
        bench.services  # noqa: B018
        for r in range(ctx.repeats):
            name = f"enq-{r}"
            cfg = experiment(name, model=model, conditions=CONDITIONS, replicates=ctx.enqueue_replicates)
            path = write_config(cfg, ctx.workdir)
            bench.reset()
            ctx.say(f"  enqueue repeat {r + 1}/{ctx.repeats}: swarmq enqueue (CLI)")
            t, out = timed(lambda: bench.swarmq("enqueue", str(path)))  # noqa: B023
            col["cli"].append(t)
            rep: dict[str, Any] = {"cli_published": _published(out.stdout)}
            bench.reset()
            t, res = timed(lambda: enqueue(bench, cfg))  # noqa: B023
            col["api"].append(t)
            rep.update(jobs=res.jobs, api_published=res.published)
            _clear_queues(bench)
            col["floor"].append(floor_enqueue(bench, name))
            with bench.connect() as conn:
                conn.execute("DELETE FROM experiments WHERE name = %s", (name + "-floor",))
            done = DONE if res.jobs > DONE else res.jobs * 9 // 10  # small --enqueue-replicates: 90 %
            mark_done(bench, name, done)
            ctx.say(f"  enqueue repeat {r + 1}/{ctx.repeats}: resume with {done} done")
            t, out = timed(lambda: bench.swarmq("enqueue", str(path)))  # noqa: B023
            col["cli_resume"].append(t)
            rep["cli_resume_published"] = _published(out.stdout)
            _clear_queues(bench)
            t, res = timed(lambda: enqueue(bench, cfg))  # noqa: B023
            col["api_resume"].append(t)
            rep.update(api_resume_published=res.published, api_resume_done=res.done, marked_done=done)
            _clear_queues(bench)
            col["floor_resume"].append(floor_resume(bench, name))
            ctx.say(f"  enqueue repeat {r + 1}/{ctx.repeats}: every job published at once (CLI)")
            every = {**cfg, "name": f"{name}-all", "max_spread": issues}
            every_path = write_config(every, ctx.workdir)
            bench.reset()
            t, out = timed(lambda: bench.swarmq("enqueue", str(every_path)))  # noqa: B023
            col["cli_all"].append(t)
            rep["cli_all_published"] = _published(out.stdout)
            _clear_queues(bench)
            col["floor_all"].append(floor_enqueue(bench, every["name"]))
            # What every command pays before its own work: the CLI's start (`--help` imports no heavy library).
            col["help"].append(timed(lambda: bench.swarmq("--help"))[0])
            col["python"].append(timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))[0])
            info.append(rep)
            ctx.say(
                f"    CLI {col['cli'][-1]:.2f} s, in-process {col['api'][-1]:.2f} s, floor {col['floor'][-1]:.2f} s; "
                f"resume CLI {col['cli_resume'][-1]:.2f} s, in-process {col['api_resume'][-1]:.2f} s; "
                f"all published: CLI {col['cli_all'][-1]:.2f} s, floor {col['floor_all'][-1]:.2f} s"
            )
    jobs, done = info[0]["jobs"], info[0]["marked_done"]
    sent, sent_all = info[0]["cli_published"], info[0]["cli_all_published"]
    base = "floor: COPY the job rows + one send_task per published job, kombu-batched (resume: select unfinished ids + send)"
    fig = FigureResult(KEY, TITLE)
    fig.rows = [
        Row(
            f"enqueue {jobs:,} jobs ({sent:,} published): `swarmq enqueue` CLI wall",
            "s",
            col["floor"],
            col["cli"],
            "≤ 2.5 s",
            check(col["cli"], lambda x: x <= 2.5),
            base,
        ),
        Row(
            f"enqueue {jobs:,} jobs: `producer.enqueue` in process",
            "s",
            col["floor"],
            col["api"],
            None,
            None,
            base,
        ),
        Row(
            f"resume, {done:,} done: CLI wall",
            "s",
            col["floor_resume"],
            col["cli_resume"],
            "≤ 3 s",
            check(col["cli_resume"], lambda x: x <= 3),
            base,
        ),
        Row(
            f"resume, {done:,} done: in process",
            "s",
            col["floor_resume"],
            col["api_resume"],
            None,
            None,
            base,
        ),
        Row(
            f"enqueue {jobs:,} jobs, all {sent_all:,} published (max_spread {issues}): CLI wall",
            "s",
            col["floor_all"],
            col["cli_all"],
            None,
            None,
            base,
        ),
        Row(
            "`swarmq --help` wall",
            "s",
            col["python"],
            col["help"],
            "≤ 0.3 s",
            check(col["help"], lambda x: x <= 0.3),
            "`python -c pass`: the interpreter's own start",
        ),
    ]
    fig.details = {
        "conditions": CONDITIONS,
        "replicates": ctx.enqueue_replicates,
        "repeats": info,
        "seconds": col,
    }
    return fig
