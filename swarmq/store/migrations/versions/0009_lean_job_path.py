"""A lean job path: a job's end and the release that follows are one round trip each.

A worker's job costs three Postgres round trips (`queue.jobs`): the claim, the end (outcome and close), and
the applied mark with the next release. The two functions here make the last two single statements:

* ``swarmq_close(job, owner, status, reason)``: close a running job that ``owner`` holds (the lease-holder
  rule: a worker that lost its lease never overwrites another's work); true when it did. The outcome INSERT
  selects from it, so close and outcome are one statement and one transaction. The close is its own statement
  inside the function, so the aggregate triggers (migration 0008) see the job's end before its outcome, as
  with two statements: a job's status change is counted in the cell it is in, then the outcome moves it.
* ``swarmq_release(e, lock_key, limits, spread, relaxed)``: the experiment-wide release (`queue.jobs.release`
  says the rule). Its statements run in order, each with a new snapshot: the advisory lock first (two workers
  never release past a limit), then the experiment's state (FOR SHARE waits for a pause or cancel in
  progress), then the release itself, which therefore sees every job the lock holder before it queued.
  ``relaxed`` commits without waiting for the WAL flush (a worker's release heals itself after a crash: the
  reaper releases a stalled experiment again); the producer's release waits for it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from swarmq.store.sql import read

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(read("0009", "swarmq_close"))
    op.execute(read("0009", "swarmq_release"))


def downgrade() -> None:
    op.execute("DROP FUNCTION swarmq_release(bigint, text, jsonb, integer, boolean)")
    op.execute("DROP FUNCTION swarmq_close(bigint, text, text, text)")
