"""Outcomes are counted into the results aggregates after their commit, in batches, instead of by a trigger in
the worker's own statement.

Migration 0008's outcome trigger ran inside the worker's outcome write, the largest part of that statement's
time (bench figure 2). With this revision:

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

The SQL: ``store/sql/0010/``; the downgrade restores 0008's files.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from swarmq.store.sql import read

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

REPLACED = (
    "swarmq_agg_outcomes",
    "swarmq_agg_rebuild",
    "swarmq_agg_job_status",
    "swarmq_agg_outcomes_written",
)
"""0008's functions this revision replaces (``swarmq_agg_outcomes_written``'s file drops the insert
trigger)."""
VIEWS = ("v_condition_summary", "v_agent_summary")


def upgrade() -> None:
    # Every outcome there is was counted by 0008's trigger: folded. New ones are not.
    op.execute("ALTER TABLE outcomes ADD COLUMN folded boolean NOT NULL DEFAULT true")
    op.execute("ALTER TABLE outcomes ALTER COLUMN folded SET DEFAULT false")
    op.execute("CREATE INDEX ix_outcomes_unfolded ON outcomes (id) WHERE NOT folded")
    for name in REPLACED:
        op.execute(read("0010", name))
    op.execute(read("0010", "swarmq_agg_fold"))
    for view in VIEWS:
        op.execute(read("0010", view))


def downgrade() -> None:
    op.execute("SELECT swarmq_agg_fold(NULL, NULL, true)")
    for view in VIEWS:
        op.execute(read("0008", view))
    op.execute("DROP FUNCTION swarmq_agg_fold(integer, integer, boolean)")
    for name in REPLACED:
        op.execute(read("0008", name))
    op.execute("DROP INDEX ix_outcomes_unfolded")
    op.execute("ALTER TABLE outcomes DROP COLUMN folded")
