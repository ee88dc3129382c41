"""The viewer's page models and the terminal/one-file forms: examples found in prompts, buffers rebuilt as the
worker saw them, filters, the results shown field by field, `swarmq show` at 80 columns and `swarmq report
--html` with nothing from elsewhere. Real Postgres and Redis, in-process runner, scripted stand-in model;
the browser tests are in test_view_browser.py."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from swarmq.errors import ConfigError
from swarmq.experiment.config import ExperimentConfig
from swarmq.model.scripted import ScriptedGenerator
from swarmq.swarm.state import Example, select_examples
from swarmq.view import charts, pages, prompt, reads
from swarmq.view.filters import JobFilter
from swarmq.view.models import JobRow
from tests.conftest import swarmq
from tests.test_runner import drain, rows, runner, setup

SWARM = {
    "baseline": {},
    "swarm": {"agents": 2, "router": "affinity", "accumulate": True, "max_examples": 3, "max_show": 2},
}


def finished(svc: Any, tmp_path: Path, **kw: Any) -> None:
    setup(svc, tmp_path, limit=6, replicates=2, conditions=SWARM, **kw)
    assert set(drain(svc, runner(svc, ScriptedGenerator()))) == {"done"}


# Pure parts first.


def test_view_refuses_a_port_in_use_on_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = swarmq("view", "--port", str(port), env={**os.environ, "SWARMQ_EMBEDDED": "0"})
    assert r.returncode == 2 and r.stderr.startswith(
        f"swarmq: error: view: cannot listen on 127.0.0.1:{port}: "
    )
    assert len(r.stderr.strip().splitlines()) == 1


def test_examples_are_marked_where_they_stand_in_the_prompt() -> None:
    a = Example("11", "def f(x):\n", "    return x\n", "math")
    b = Example("12", "def g(y):\n", "    return -y\n", "math")
    text = "# head\n\ndef f(x):\n    return x\n\n\ndef g(y):\n    return -y\n\n\ndef h(z):\n"
    segments = prompt.mark(text, [a, b])
    assert "".join(s.text for s in segments) == text  # nothing lost or repeated
    marked = [(s.example_id, s.text) for s in segments if s.example_id]
    assert marked == [("11", "def f(x):\n    return x"), ("12", "def g(y):\n    return -y")]
    assert prompt.mark("no examples here", [a]) == [prompt.Segment("no examples here")]


def test_chat_messages_belong_to_their_examples() -> None:
    a = Example("7", "def f(x):\n", "    return x\n", "math")
    messages = [
        {"role": "system", "content": "You complete functions."},
        {"role": "user", "content": "Complete this function:\n```python\ndef f(x):\n```"},
        {"role": "assistant", "content": "```python\ndef f(x):\n    return x\n```"},
        {"role": "user", "content": "Complete this function:\n```python\ndef h(z):\n```"},
    ]
    out = prompt.chat_messages(json.dumps(messages), [a])
    assert out is not None
    assert [m.segments[0].example_id for m in out] == [None, "7", "7", None]
    assert prompt.chat_messages("plain text prompt", [a]) is None


def test_filters_parse_and_refuse_bad_values() -> None:
    f = JobFilter.parse(
        {"condition": "swarm", "replicate": "1", "verdict": "success", "q": "50%_", "agent": ""}
    )
    assert f.active() == {"condition": "swarm", "replicate": 1, "verdict": "success", "q": "50%_"}
    sql, params = f.where()
    assert "j.condition = :f_condition" in sql and params["f_replicate"] == 1
    assert params["f_q"] == "%50\\%\\_%"  # LIKE wildcards in the text are literal
    for bad in ({"replicate": "x"}, {"verdict": "great"}, {"status": "sleeping"}):
        with pytest.raises(ConfigError):
            JobFilter.parse(bad)


def test_results_become_tables_field_by_field_whatever_the_fields() -> None:
    data = {
        "experiment": "e",
        "matched": True,
        "groups": [{"condition": "a", "rate": 0.25, "ci95": [0.1, 0.5]}, {"condition": "b", "new": None}],
        "specialization": {"a": {"S": 0.5}},
        "empty": {},
    }
    facts, tables = pages.tables_of(data)
    assert facts == [("experiment", "e"), ("matched", "yes")]
    groups, spec = tables
    assert groups.columns == ["condition", "rate", "ci95", "new"]  # a field only one row has still shows
    assert [c.text for c in groups.rows[0]] == ["a", "0.250", "[0.100, 0.500]", "-"]
    assert [json.loads(c.value) for c in groups.rows[0]] == ["a", 0.25, [0.1, 0.5], None]
    assert spec.columns == ["condition", "S"] and [c.text for c in spec.rows[0]] == ["a", "0.500"]


def test_the_matrix_places_each_job_and_keeps_to_its_issue_limit() -> None:
    def job(i: int, cond: str, rep: int, issue: str) -> JobRow:
        return JobRow(i, cond, rep, 0, issue, "math", "done", "success", "passed", 0, 1.0, "")

    jobs = [job(1, "b", 0, "x"), job(2, "a", 0, "x"), job(3, "a", 1, "y"), job(4, "b", 1, "z")]
    m = pages.matrix(jobs)
    assert m.columns == [("a", 0), ("a", 1), ("b", 0), ("b", 1)] and m.issues == 3
    cells = {r.instance_id: [c.job_id if c else None for c in r.cells] for r in m.rows}
    assert cells == {"x": [2, None, 1, None], "y": [None, 3, None, None], "z": [None, None, None, 4]}
    cut = pages.matrix(jobs, issues=2)
    assert [r.instance_id for r in cut.rows] == ["x", "y"] and cut.issues == 3


def test_curves_and_heatmaps_draw_every_condition() -> None:
    rows = [
        {
            "condition": c,
            "replicate": 0,
            "position": p,
            "agent_id": p % 2,
            "task_type": t,
            "success": s,
            "judged": True,
        }
        for c in ("x", "y")
        for p, (t, s) in enumerate([("math", True), ("list", False), ("math", True)])
    ]
    curves = charts.curves(rows)
    assert curves["x"] == ([1.0, 0.5, 2 / 3], 1)
    svg = charts.curves_svg(curves)
    assert svg.count("<polyline") == 2 and 'data-condition="y"' in svg
    maps = charts.heatmaps(rows, {"x": 2, "y": 2})
    labels, types, shares, counts = maps["x"]
    assert labels == ["r0 agent 0", "r0 agent 1"] and types == ["list", "math"]
    assert counts == [[0, 2], [1, 0]] and shares == [[0.0, 1.0], [1.0, 0.0]]
    assert charts.heatmap_svg(*maps["x"]).count("<rect") == 4


# Against a finished slice.


@pytest.mark.services
def test_job_page_rebuilds_the_buffer_the_worker_routed_from(svc: Any, tmp_path: Path) -> None:
    finished(svc, tmp_path)
    with_examples = rows(
        svc,
        "SELECT o.job_id, o.example_ids, i.task_type FROM outcomes o JOIN jobs j ON j.id = o.job_id "
        "JOIN issues i ON i.id = j.issue_id WHERE jsonb_array_length(o.example_ids) > 0 ORDER BY o.job_id",
    )
    assert with_examples, "the slice must hold prompts with examples"
    with svc.sessions() as session:
        cfg = ExperimentConfig.stored(rows(svc, "SELECT config FROM experiments")[0][0])
        for job_id, example_ids, task_type in with_examples:
            page = pages.job_page(session, int(job_id))
            buffer = [Example(i, "", "", "") for i in page.buffer_ids]
            # The buffer rebuilt from Postgres, put through the worker's own selection, gives exactly the
            # examples the worker recorded: the rebuild is the state the job was routed from.
            cond = cfg.conditions["swarm"]
            chosen = select_examples(
                buffer, task_type, max_show=cond.max_show, type_filtered=cond.type_filtered
            )
            assert [e.id for e in chosen] == example_ids
            assert page.shown_ids == example_ids
            assert [s.example_id for s in page.prompt if s.example_id] == example_ids
            assert (
                "".join(s.text for s in page.prompt)
                == rows(svc, f"SELECT prompt FROM outcomes WHERE job_id = {job_id}")[0][0]
            )
            assert page.replay_command == f"swarmq replay {job_id}"
            assert sum(r.chosen for r in page.routes) == 1 and page.router == "affinity"
            assert sum(r.probability or 0 for r in page.routes) == pytest.approx(1.0)


@pytest.mark.services
def test_the_job_list_filters_and_searches(svc: Any, tmp_path: Path) -> None:
    finished(svc, tmp_path)
    (total,) = rows(svc, "SELECT count(*) FROM jobs")[0]
    ((needle,),) = rows(
        svc, "SELECT substr(completion, 13, 8) FROM outcomes WHERE completion <> '' ORDER BY job_id LIMIT 1"
    )
    holders = [
        i for i, c in rows(svc, "SELECT job_id, completion FROM outcomes ORDER BY job_id") if needle in c
    ]
    (successes,) = rows(svc, "SELECT count(*) FROM outcomes WHERE success")[0]
    with svc.sessions() as session:
        every = pages.experiment_page(session, "t")
        assert (
            every.matching
            == total
            == len(every.jobs)
            == sum(1 for r in every.matrix.rows for c in r.cells if c is not None)
        )
        found = pages.experiment_page(session, "t", JobFilter(q=needle.upper()))
        assert [j.job_id for j in found.jobs] == holders  # the search ignores case
        good = pages.experiment_page(session, "t", JobFilter(verdict="success"))
        assert good.matching == successes and {j.verdict for j in good.jobs} == {"success"}
        narrow = pages.experiment_page(session, "t", JobFilter(condition="swarm", replicate=1, agent=0))
        assert narrow.jobs and {(j.condition, j.replicate, j.agent) for j in narrow.jobs} == {("swarm", 1, 0)}
        assert every.complete and every.progress["done"] == total
        assert every.matrix.issues == 6 and len(every.matrix.rows) == 6
        exp_id = int(rows(svc, "SELECT id FROM experiments")[0][0])
        first_two, _ = reads.jobs(session, exp_id, JobFilter(), limit=None, first_issues=2)
    want = {i for (i,) in rows(svc, "SELECT instance_id FROM jobs GROUP BY 1 ORDER BY min(seq) LIMIT 2")}
    assert {j.instance_id for j in first_two} == want and len(first_two) == len(want) * 4


@pytest.mark.services
def test_show_prints_the_job_at_80_columns(svc: Any, tmp_path: Path, services_env: dict[str, str]) -> None:
    finished(svc, tmp_path)
    ((job_id, completion, example_ids),) = rows(
        svc,
        "SELECT job_id, completion, example_ids FROM outcomes "
        "WHERE completion <> '' AND jsonb_array_length(example_ids) > 0 ORDER BY job_id LIMIT 1",
    )
    r = swarmq("show", str(job_id), env={**services_env, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert completion.strip() in r.stdout and f"replay: swarmq replay {job_id}" in r.stdout
    for example in example_ids:
        assert f"example {example}" in r.stdout and f"end of example {example}" in r.stdout
    data = json.loads(swarmq("show", str(job_id), "--format", "json", env=services_env).stdout)
    assert data["completion"] == completion and data["shown_ids"] == example_ids
    missing = swarmq("show", "999999", env=services_env)
    assert missing.returncode == 4 and missing.stderr.strip() == "swarmq: error: no job with id 999999"


@pytest.mark.services
def test_report_html_is_one_file_with_every_job(
    svc: Any, tmp_path: Path, services_env: dict[str, str]
) -> None:
    finished(svc, tmp_path)
    out = tmp_path / "report.html"
    r = swarmq("report", "t", "--html", "-o", str(out), env=services_env)
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    # Nothing is fetched from elsewhere: no external script, style, image or font.
    assert (
        not re.search(r"""(src|href)=["'](https?:)?//""", html)
        and "<link" not in html
        and "@import" not in html
    )
    assert not re.search(r"<script[^>]+src=", html)
    ids = [i for (i,) in rows(svc, "SELECT id FROM jobs ORDER BY id")]
    assert sorted(int(i) for i in re.findall(r'<section class="job-page" id="job-(\d+)"', html)) == ids
    assert not list(tmp_path.glob(".report.html.*"))  # no temporary file left beside it
    refused = swarmq("report", "t", "-o", str(out), env=services_env)
    assert refused.returncode == 2 and "--html" in refused.stderr
    unknown = swarmq("report", "nope", "--html", "-o", str(tmp_path / "x.html"), env=services_env)
    assert unknown.returncode == 4 and not (tmp_path / "x.html").exists()


@pytest.mark.services
def test_pages_of_an_unstarted_experiment_and_a_failed_job(svc: Any, tmp_path: Path) -> None:
    from tests.test_runner import TooLong

    setup(svc, tmp_path, limit=3, conditions={"swarm": SWARM["swarm"]})
    with svc.sessions() as session:
        fresh = pages.experiment_page(session, "t")
        assert not fresh.complete and fresh.progress["done"] == 0 and fresh.matching == 3
        assert {j.verdict for j in fresh.jobs} == {"none"}
        ((first,),) = rows(svc, "SELECT id FROM jobs ORDER BY seq LIMIT 1")
        waiting = pages.job_page(session, int(first))
        assert not waiting.has_outcome and waiting.routes == [] and waiting.replay_command == ""
    assert drain(svc, runner(svc, TooLong())) == ["done", "done", "failed"]
    ((failed,),) = rows(svc, "SELECT id FROM jobs WHERE status = 'failed'")
    with svc.sessions() as session:
        page = pages.job_page(session, int(failed))
        listed = pages.experiment_page(session, "t", JobFilter(status="failed", q="context window"))
    assert page.status == "failed" and page.verdict == "failure"
    assert page.errors == [("job", "Requested tokens (9000) exceed context window of 2048")]  # once
    assert ("scorer status", "skipped") in page.score
    assert page.replay_command == "swarmq replay " + str(failed) and page.completion == ""
    assert [j.job_id for j in listed.jobs] == [failed]
