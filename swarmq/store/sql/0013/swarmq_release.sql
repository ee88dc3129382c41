-- swarmq_release(e, lock_key, limits, spread, relaxed): the experiment-wide release
-- (`queue.jobs.release` says the rule): queue the pending jobs inside the position window (the
-- lowest open position + spread) that each stream's limit (limits: condition -> max in flight, null
-- for none) leaves room for; returns them. Its statements run in order, each with a new snapshot:
-- the advisory lock first (two releases never pass a limit together), then the experiment's state
-- (FOR SHARE waits for a pause or cancel in progress), then the release, which therefore sees every
-- job the lock holder before it queued. relaxed commits without waiting for the WAL flush (a
-- worker's release heals itself after a crash: the reaper releases a stalled experiment again).
-- Within a position a stream's samples go last to first: sample 0, the one that feeds the swarm,
-- runs after the others, so that in a strict stream every sample sees the same state.

CREATE OR REPLACE FUNCTION swarmq_release(e bigint, lock_key text, limits jsonb, spread integer,
 relaxed boolean)
 RETURNS TABLE(job_id bigint, model_key character varying, seq bigint)
 LANGUAGE plpgsql
AS $fn$
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
        WHERE j.experiment_id = e AND j.status IN ('pending', 'queued', 'running')
    ),
    active AS (
        SELECT j.condition, j.replicate, count(*) AS n FROM jobs j
        WHERE j.experiment_id = e AND j.status IN ('queued', 'running')
        GROUP BY j.condition, j.replicate
    ),
    candidate AS (
        SELECT j.id, j.seq, j.condition, j.replicate,
               row_number() OVER (PARTITION BY j.condition, j.replicate
                                  ORDER BY j.position, j.sample DESC) AS k
        FROM jobs j, floor
        WHERE j.experiment_id = e AND j.status = 'pending' AND j.position < floor.p + spread
    ),
    chosen AS (
        SELECT c.id, c.seq FROM candidate c
        JOIN jsonb_each_text(limits) lim ON lim.key = c.condition
        LEFT JOIN active a ON a.condition = c.condition AND a.replicate = c.replicate
        WHERE lim.value IS NULL OR c.k + coalesce(a.n, 0) <= CAST(lim.value AS int)
    )
    UPDATE jobs SET status = 'queued', published_at = now() FROM chosen
    WHERE jobs.id = chosen.id
    RETURNING jobs.id::bigint, jobs.model_key::varchar, chosen.seq::bigint;
END
$fn$;
