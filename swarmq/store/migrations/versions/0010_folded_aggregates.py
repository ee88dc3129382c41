"""Outcomes are counted into the results aggregates after their commit, in batches, instead of by a trigger in
the worker's own statement.

Migration 0008's outcome trigger cost each job ~2.5 ms of Postgres time inside the worker's outcome write, the
largest part of that statement (bench figure 2): 23 ms per null job with it, 17 without, on 2 vCPUs. Now:

* An outcome is inserted *unfolded* (``outcomes.folded`` false; a partial index lists them). No trigger runs.
* ``swarmq_agg_fold(e, batch, wait)`` folds unfolded outcomes (of experiment ``e``, or of all when NULL; at
  most ``batch``, or all when NULL): it locks them, then their jobs (FOR SHARE: a job's status cannot change
  under the fold), marks them folded and applies them with 0008's ``swarmq_agg_outcomes``, in one
  transaction. Outcomes, then jobs: the order lifecycle's retry takes them in. With ``wait`` (a report, before
  it reads) it folds every one, waiting for a fold in progress; without (each worker's housekeeping, every
  reaper pass) it takes only outcomes whose swarm update is marked applied and skips what another fold holds,
  so a worker's applied mark, right after its outcome, never waits for a fold.
* Until its outcome is folded, a job's counters stay in cell -1: the job-status trigger counts only folded
  outcomes, and the pairs, issue and histogram tables hold only folded outcomes. Updates and deletes of an
  unfolded outcome change nothing; the fold counts the row as it is then. So the tables always equal a recount
  of the folded rows, and the fold moves them to a recount of all.
* ``v_condition_summary`` and ``v_agent_summary`` add the unfolded outcomes' counters as they read (a scan of
  the partial index): the views are exact at every moment without writing.
* ``swarmq_agg_rebuild`` folds the experiment's outcomes first, then recounts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _revision_0008() -> ModuleType:
    """Migration 0008's SQL, the base this one edits (migrations never import the app, nor share its code)."""
    path = Path(__file__).with_name("0008_aggregates.py")
    spec = importlib.util.spec_from_file_location("swarmq_migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _edit(sql: str, old: str, new: str, count: int = 1) -> str:
    """``sql`` with ``old`` replaced by ``new``, which must occur exactly ``count`` times (0008 as written)."""
    found = sql.count(old)
    if found != count:
        raise RuntimeError(
            f"migration 0010: expected {count} of {old!r} in migration 0008's SQL, found {found}"
        )
    return sql.replace(old, new)


def _replace(sql: str) -> str:
    return _edit(sql, "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


ANY_OUTCOME = "LEFT JOIN outcomes o ON o.job_id = j.id"
FOLDED_OUTCOME = "LEFT JOIN outcomes o ON o.job_id = j.id AND o.folded"

FOLD = """
CREATE FUNCTION swarmq_agg_fold(e integer, batch integer, wait boolean) RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    picked outcomes[];
BEGIN
    IF wait THEN
        SELECT coalesce(array_agg(ROW(x.*)::outcomes ORDER BY x.id), '{}') INTO picked FROM (
            SELECT o.* FROM outcomes o JOIN jobs j ON j.id = o.job_id
            WHERE NOT o.folded AND (e IS NULL OR j.experiment_id = e)
            ORDER BY o.id LIMIT batch FOR UPDATE OF o) x;
    ELSE
        SELECT coalesce(array_agg(ROW(x.*)::outcomes ORDER BY x.id), '{}') INTO picked FROM (
            SELECT o.* FROM outcomes o JOIN jobs j ON j.id = o.job_id
            WHERE NOT o.folded AND o.update_applied AND (e IS NULL OR j.experiment_id = e)
            ORDER BY o.id LIMIT batch FOR UPDATE OF o SKIP LOCKED) x;
    END IF;
    IF cardinality(picked) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM jobs WHERE id IN (SELECT job_id FROM unnest(picked)) ORDER BY id FOR SHARE;
    UPDATE outcomes SET folded = true WHERE id IN (SELECT id FROM unnest(picked));
    PERFORM swarmq_agg_outcomes('{}', picked);
    RETURN cardinality(picked);
END
$fn$"""

OUTCOMES_WRITTEN = """
CREATE OR REPLACE FUNCTION swarmq_agg_outcomes_written() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    -- Only folded outcomes are counted (an unfolded one is counted as it is when it is folded).
    IF TG_LEVEL = 'ROW' THEN
        IF OLD.folded THEN
            PERFORM swarmq_agg_outcomes(ARRAY[OLD], ARRAY[NEW]);
        END IF;
    ELSE
        PERFORM swarmq_agg_outcomes(ARRAY(SELECT ROW(o.*)::outcomes FROM old_outcomes o WHERE o.folded), '{}');
    END IF;
    RETURN NULL;
END
$fn$"""


def _cells_and_unfolded(m: ModuleType, key: tuple[str, ...]) -> str:
    """The cells, and each unfolded outcome's counters as a cell row (what the fold will add to the cells; the
    job's own counters are not among them: they are in cell -1 until then), each summed to ``key`` before the
    union: the planner cannot estimate a union's rows per experiment, and summed first the view keeps the plan
    it had over the cells alone (a hash aggregate, not a sort of every cell)."""
    where = {
        "experiment_id": "j.experiment_id",
        "condition": "j.condition",
        "replicate": "j.replicate",
        "agent": "coalesce(o.agent_id, -1)",
    }
    counters = {**{name: "0" for name in m.JOB_COUNTERS}, **m.OUTCOME_COUNTERS}
    sums = ", ".join(f"sum({c}){'' if c in m.NUMERIC else '::bigint'} AS {c}" for c in counters)
    columns = ", ".join(key)
    unfolded = ", ".join(
        f"({expr})::{'numeric' if name in m.NUMERIC else 'bigint'} AS {name}"
        for name, expr in counters.items()
    )
    return (
        f"(SELECT {columns}, {sums} FROM agg_cells GROUP BY {columns} "
        f"UNION ALL SELECT {columns}, {sums} FROM (SELECT {', '.join(f'{where[k]} AS {k}' for k in key)}, "
        f"{unfolded} FROM outcomes o JOIN jobs j ON j.id = o.job_id WHERE NOT o.folded) u "
        f"GROUP BY {columns}) c"
    )


def _views(m: ModuleType) -> list[str]:
    """0008's views over the cells and the unfolded outcomes' counters alike."""
    keys = {
        "v_condition_summary": ("experiment_id", "condition"),
        "v_agent_summary": ("experiment_id", "condition", "replicate", "agent"),
    }
    out = []
    for view in (m.V_CONDITION_SUMMARY, m.V_AGENT_SUMMARY):
        name = view.split("CREATE VIEW ")[1].split()[0]
        out.append(
            _edit(
                _edit(view, "CREATE VIEW", "CREATE OR REPLACE VIEW"),
                "FROM agg_cells c",
                f"FROM {_cells_and_unfolded(m, keys[name])}",
            )
        )
    return out


def upgrade() -> None:
    m = _revision_0008()
    # Every outcome there is now was counted by 0008's trigger: folded. New ones are not.
    op.execute("ALTER TABLE outcomes ADD COLUMN folded boolean NOT NULL DEFAULT true")
    op.execute("ALTER TABLE outcomes ALTER COLUMN folded SET DEFAULT false")
    op.execute("CREATE INDEX ix_outcomes_unfolded ON outcomes (id) WHERE NOT folded")
    op.execute("DROP TRIGGER agg_outcomes_inserted ON outcomes")
    op.execute(_replace(_edit(m.OUTCOMES_FN, ANY_OUTCOME, FOLDED_OUTCOME)))
    rebuild = _edit(
        m.REBUILD_FN,
        "LOCK TABLE jobs, outcomes IN SHARE ROW EXCLUSIVE MODE;",
        "LOCK TABLE jobs, outcomes IN SHARE ROW EXCLUSIVE MODE;\n    UPDATE outcomes o SET folded = true "
        "FROM jobs j WHERE j.id = o.job_id AND j.experiment_id = e AND NOT o.folded;",
    )
    op.execute(_replace(rebuild))
    op.execute(_replace(_edit(m.TRIGGER_FNS[1], ANY_OUTCOME, FOLDED_OUTCOME)))
    op.execute(OUTCOMES_WRITTEN)
    op.execute(FOLD)
    for view in _views(m):
        op.execute(view)


def downgrade() -> None:
    m = _revision_0008()
    op.execute("SELECT swarmq_agg_fold(NULL, NULL, true)")
    for view in (m.V_CONDITION_SUMMARY, m.V_AGENT_SUMMARY):
        op.execute(_edit(view, "CREATE VIEW", "CREATE OR REPLACE VIEW"))
    op.execute("DROP FUNCTION swarmq_agg_fold(integer, integer, boolean)")
    for fn in (m.OUTCOMES_FN, m.REBUILD_FN, m.TRIGGER_FNS[1], m.TRIGGER_FNS[3]):
        op.execute(_replace(fn))
    op.execute(next(t for t in m.TRIGGERS if "agg_outcomes_inserted" in t))
    op.execute("DROP INDEX ix_outcomes_unfolded")
    op.execute("ALTER TABLE outcomes DROP COLUMN folded")
