"""`swarmq view` and `swarmq report --html` in a real headless Chromium (tests/browser.py): the pages of a
finished slice show the numbers of `swarmq results --format json`, a job page shows its completion and
marked examples, the filters work, the page of a running experiment refreshes itself until it finishes, and
the one-file report opens offline. Screenshots are kept in `ARTIFACTS` (git-ignored)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmq.model.scripted import ScriptedGenerator
from swarmq.view.pages import fmt
from tests.browser import Browser, Page
from tests.conftest import ROOT, _port_open, free_port, swarmq
from tests.test_runner import drain, rows, runner, setup
from tests.test_view import SWARM, finished

pytestmark = pytest.mark.services
ARTIFACTS = ROOT / "tests" / "artifacts" / "view"
"""Where the screenshots are kept for a person to look at (git-ignored)."""

TABLES = """JSON.stringify([...document.querySelectorAll('table.results')].map(t => [t.dataset.key,
  [...t.querySelectorAll('tbody tr')].map(r => [...r.querySelectorAll('td')].map(
    td => [td.dataset.field, td.dataset.value, td.textContent]))]))"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


@pytest.fixture
def server(services_env: dict[str, str]) -> Iterator[str]:
    """`swarmq view` as a user starts it, on a free port; its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarmq", "view", "--port", str(port)],
        cwd=ROOT,
        env=services_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not _port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"swarmq view did not start: {proc.communicate()[0][-2000:]}")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop, as every long-running command's
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in output, output[-2000:]


def shown_tables(page: Page) -> dict[str, list[list[tuple[str, Any, str]]]]:
    """Each results table's rows as (field, value, text), the value parsed in Python (JavaScript would turn
    1.0 into 1)."""
    return {
        key: [[(f, json.loads(v), text) for f, v, text in row] for row in rows_]
        for key, rows_ in json.loads(page.eval(TABLES))
    }


def assert_results_shown(page: Page, expected: dict[str, Any]) -> None:
    """Every row of every results table holds exactly the values of `swarmq results --format json`, and
    shows each as the viewer formats it."""
    tables = shown_tables(page)
    for key, value in expected.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            got = [
                {f: v for f, v, _ in row if f in want} for row, want in zip(tables[key], value, strict=True)
            ]
            assert got == value, key
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            got_map = {
                row[0][1]: {f: v for f, v, _ in row[1:] if f in value[row[0][1]]} for row in tables[key]
            }
            assert got_map == value, key
        else:
            continue
        for row in tables[key]:
            assert all(text == fmt(v) for _, v, text in row)
    assert {"groups", "comparisons", "specialization"} <= set(tables)


def test_finished_experiment_in_the_browser(
    svc: Any, tmp_path: Path, services_env: dict[str, str], server: str, browser: Browser
) -> None:
    finished(svc, tmp_path)
    res = swarmq("results", "t", "--format", "json", env=services_env)
    assert res.returncode == 0, res.stderr
    expected = json.loads(res.stdout)
    page = browser.page(1400, 1000)

    page.goto(server + "/")
    listed = json.loads(swarmq("experiments", "--format", "json", env=services_env).stdout)["experiments"]
    shown = page.eval(
        "Object.fromEntries([...document.querySelectorAll('tr[data-experiment=t] td[data-count]')].map(e => "
        "[e.dataset.count, Number(e.textContent)]))"
    )
    assert shown == {k: v for k, v in listed[0].items() if k in shown} and shown["done"] == 24
    assert (
        page.eval("document.querySelector('tr[data-experiment=t] a').getAttribute('href')")
        == "/experiments/t"
    )
    page.screenshot(ARTIFACTS / "experiments.png")

    page.goto(server + "/experiments/t")
    assert_results_shown(page, expected)
    assert not page.eval("document.body.hasAttribute('data-live')")  # finished: no refreshing
    assert page.eval("document.querySelectorAll('svg.chart polyline').length") == 2  # one curve per condition
    assert page.eval("document.querySelectorAll('svg.heatmap').length") == 2  # one per condition
    (total,) = rows(svc, "SELECT count(*) FROM jobs")[0]
    assert page.eval("document.querySelectorAll('table.matrix td[data-job]').length") == total
    page.screenshot(ARTIFACTS / "experiment.png")

    # A job with examples in its prompt, opened from its cell of the outcome matrix.
    ((job_id, completion, example_ids),) = rows(
        svc,
        "SELECT job_id, completion, example_ids FROM outcomes "
        "WHERE completion <> '' AND jsonb_array_length(example_ids) > 1 ORDER BY job_id LIMIT 1",
    )
    page.eval(f"document.querySelector('table.matrix td[data-job=\"{job_id}\"] a').click()")
    page.wait_for(f"location.pathname === '/jobs/{job_id}' && document.readyState === 'complete'")
    assert page.eval("document.querySelector('pre.completion').textContent") == completion
    marked = page.eval("[...document.querySelectorAll('pre.prompt .example')].map(e => e.dataset.example)")
    assert marked == example_ids
    assert page.eval("document.querySelector('code.replay').textContent") == f"swarmq replay {job_id}"
    assert page.eval("document.querySelectorAll('table.routing tr.chosen').length") == 1
    page.screenshot(ARTIFACTS / "job.png")

    # The filters: successes of one condition, through the form.
    page.goto(server + "/experiments/t")
    page.eval("""(() => { const f = document.querySelector('form.filters');
        f.verdict.value = 'success'; f.condition.value = 'swarm'; f.submit(); })()""")
    page.wait_for("location.search.includes('verdict=success') && document.readyState === 'complete'")
    listed = page.eval(
        "[...document.querySelectorAll('table.jobs tbody tr')].map(r => Number(r.dataset.job))"
    )
    want = [
        i
        for (i,) in rows(
            svc,
            "SELECT j.id FROM jobs j JOIN outcomes o ON o.job_id = j.id "
            "WHERE o.success AND j.condition = 'swarm' ORDER BY j.seq",
        )
    ]
    assert listed == want and want


def test_a_running_experiment_refreshes_itself(
    svc: Any, tmp_path: Path, services_env: dict[str, str], server: str, browser: Browser
) -> None:
    setup(svc, tmp_path, limit=4, conditions=SWARM)
    run = runner(svc, ScriptedGenerator())
    for _ in range(3):
        ((job_id,),) = rows(svc, "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1")
        assert run.run(int(job_id)) == "done"
    status = json.loads(swarmq("status", "t", "--format", "json", env=services_env).stdout)
    page = browser.page(1400, 1000)
    # A job not run yet has a page too: nothing routed, nothing to replay, and it refreshes itself.
    ((waiting,),) = rows(svc, "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1")
    page.goto(f"{server}/jobs/{waiting}")
    assert page.eval("document.body.hasAttribute('data-live')")
    assert page.eval("document.querySelector('h1').textContent").startswith(f"job {waiting}")
    assert page.eval("document.querySelector('code.replay')") is None
    # Unknown names and bad filters are said in one line, with their HTTP status.
    page.goto(f"{server}/experiments/nope")
    assert page.eval("document.querySelector('p.error').textContent") == "unknown experiment 'nope'"
    page.goto(f"{server}/experiments/t?replicate=x")
    assert page.eval("document.querySelector('h1').textContent") == "400"
    page.goto(server + "/experiments/t")
    assert page.eval("document.body.hasAttribute('data-live')")
    assert page.eval("document.querySelector('h1 .badge').textContent") == "running"
    shown = page.eval(
        "Object.fromEntries([...document.querySelectorAll('[data-count]')].map(e => "
        "[e.dataset.count, Number(e.querySelector('b').textContent)]))"
    )
    assert shown == {k: v for k, v in status["total"].items() if k in shown} and shown["done"] == 3
    page.screenshot(ARTIFACTS / "running.png")
    # The rest runs while the page is open: it picks the jobs up by itself and stops refreshing at the end.
    assert set(drain(svc, run)) == {"done"}
    page.wait_for("!document.body.hasAttribute('data-live')", timeout=60)
    assert page.eval("document.querySelector('[data-count=done] b').textContent") == "8"
    assert page.eval("document.querySelector('h1 .badge').textContent") == "finished"
    assert int(page.eval("document.body.dataset.refreshed")) >= 1  # swapped in place, not reloaded


def test_the_one_file_report_opens_offline(
    svc: Any, tmp_path: Path, services_env: dict[str, str], browser: Browser
) -> None:
    finished(svc, tmp_path)
    expected = json.loads(swarmq("results", "t", "--format", "json", env=services_env).stdout)
    out = tmp_path / "report.html"
    assert swarmq("report", "t", "--html", "-o", str(out), env=services_env).returncode == 0
    page = browser.page(1400, 1000)
    url = out.as_uri()
    page.goto(url)
    assert page.eval("performance.getEntriesByType('resource').length") == 0  # nothing fetched
    assert_results_shown(page, expected)
    ((job_id, completion),) = rows(
        svc, "SELECT job_id, completion FROM outcomes WHERE completion <> '' ORDER BY job_id DESC LIMIT 1"
    )
    page.eval(f"document.querySelector('table.matrix td[data-job=\"{job_id}\"] a').click()")
    page.wait_for(f"location.hash === '#job-{job_id}'")
    section = f"document.getElementById('job-{job_id}')"
    assert page.eval(f"getComputedStyle({section}).display") == "block"
    assert page.eval("getComputedStyle(document.getElementById('experiment')).display") == "none"
    assert page.eval(f"{section}.querySelector('pre.completion').textContent") == completion
    page.screenshot(ARTIFACTS / "report-job.png")
    # The filters work without a server: the report filters its own rows.
    page.eval("location.hash = '#experiment'")
    page.eval("""(() => { const f = document.querySelector('form.filters'); f.verdict.value = 'failure';
        f.dispatchEvent(new Event('change')); })()""")
    visible = page.eval(
        "[...document.querySelectorAll('table.jobs tbody tr:not(.hidden)')].map(r => r.dataset.verdict)"
    )
    (failures,) = rows(svc, "SELECT count(*) FROM outcomes WHERE NOT success")[0]
    assert visible == ["failure"] * failures and failures > 0
    assert os.path.getsize(out) > 0
