"""A lean job path: a job's end and the release that follows are one round trip each.

A worker's job costs three Postgres round trips (`queue.jobs`): the claim, the end (outcome and close), and the
applied mark with the next release. The two functions here make the last two single statements:

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

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CLOSE = """
CREATE FUNCTION swarmq_close(job bigint, owner text, new_status text, reason text) RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE jobs SET status = new_status, error = reason, finished_at = now(), lease_expires_at = NULL
    WHERE id = job AND status = 'running' AND lease_owner = owner;
    RETURN FOUND;
END
$fn$"""

RELEASE = """
CREATE FUNCTION swarmq_release(e bigint, lock_key text, limits jsonb, spread integer, relaxed boolean)
RETURNS TABLE (job_id bigint, model_key varchar, seq bigint) LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    IF relaxed THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(lock_key));
    PERFORM 1 FROM experiments x WHERE x.id = e AND x.state = 'active' FOR SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH floor AS (
        SELECT min(j.position) AS p FROM jobs j
        WHERE j.experiment_id = e AND j.status IN ('pending', 'queued', 'running')),
    active AS (
        SELECT j.condition, j.replicate, count(*) AS n FROM jobs j
        WHERE j.experiment_id = e AND j.status IN ('queued', 'running') GROUP BY j.condition, j.replicate),
    candidate AS (
        SELECT j.id, j.seq, j.condition, j.replicate,
               row_number() OVER (PARTITION BY j.condition, j.replicate ORDER BY j.position) AS k
        FROM jobs j, floor
        WHERE j.experiment_id = e AND j.status = 'pending' AND j.position < floor.p + spread),
    chosen AS (
        SELECT c.id, c.seq FROM candidate c
        JOIN jsonb_each_text(limits) lim ON lim.key = c.condition
        LEFT JOIN active a ON a.condition = c.condition AND a.replicate = c.replicate
        WHERE lim.value IS NULL OR c.k + coalesce(a.n, 0) <= CAST(lim.value AS int))
    UPDATE jobs SET status = 'queued', published_at = now() FROM chosen
    WHERE jobs.id = chosen.id
    RETURNING jobs.id::bigint, jobs.model_key::varchar, chosen.seq::bigint;
END
$fn$"""


def upgrade() -> None:
    op.execute(CLOSE)
    op.execute(RELEASE)


def downgrade() -> None:
    op.execute("DROP FUNCTION swarmq_release(bigint, text, jsonb, integer, boolean)")
    op.execute("DROP FUNCTION swarmq_close(bigint, text, text, text)")
