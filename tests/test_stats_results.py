"""`results` on real Postgres: the interim flag, the scoring-error sensitivity and the table at 80 columns, from
a run of the scripted model through the whole job path."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import text

from swarmq.model.scripted import ScriptedGenerator
from swarmq.report.render import print_table
from swarmq.report.results import results
from tests.test_runner import SWARM, drain, rows, runner, setup

pytestmark = pytest.mark.services


def test_interim_then_final_with_scoring_sensitivity(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=6, replicates=2, conditions=SWARM)
    run = runner(svc, ScriptedGenerator())
    first = rows(svc, "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1")
    run.run(int(first[0][0]))
    with svc.sessions() as session:
        assert results(session, "t")["interim"] is True  # jobs remain: not a final test
    drain(svc, run)
    with svc.sessions() as session:
        # Every swarm outcome of two issues becomes a scoring error.
        session.execute(
            text(
                "UPDATE outcomes SET score_status = 'error', success = false WHERE job_id IN (SELECT id FROM jobs "
                "WHERE condition = 'swarm' AND instance_id IN (SELECT instance_id FROM jobs ORDER BY instance_id LIMIT 2))"
            )
        )
        session.commit()
        data = results(session, "t")
        recounted = results(session, "t", recount=True)
    assert data["interim"] is False
    (comp,) = data["comparisons"]
    assert comp["pairs"] < 12  # the unjudged cells left the matched set
    assert recounted["comparisons"] == data["comparisons"]
    sens = data["scoring_sensitivity"]
    assert set(sens) == {"as_failures", "as_successes"}
    buf = io.StringIO()
    print_table(data, Console(file=buf, width=80, color_system=None))
    text_out = buf.getvalue()
    assert max(len(line) for line in text_out.splitlines()) <= 80, text_out
    assert "if every scoring error were a failure" in text_out
    assert "conditional on these swarms" in text_out and "interim" not in text_out
    assert "baseline" in text_out and "swarm" in text_out
