-- swarmq_agg_outcomes(olds, news): apply a change of outcomes to the results aggregates, in the
-- writer's transaction: the rows of ``olds`` leave the counts, those of ``news`` join them (a fold
-- passes only news; an update passes the row before and after; a delete only olds).
--
-- * agg_cells: an outcome's counters, and its job's, count in its agent's cell (-1: a failure
--   outcome); its job's counters leave cell -1, where they stay while the job has no counted
--   outcome. Each counter is written once, as `store/counters.py` defines it (a test checks).
-- * agg_pairs: per (experiment, replicate, issue), bitmasks of the conditions with a judged outcome
--   and with a success (bit k: the k-th condition in byte order) and each condition's agent. The
--   pairs the change touches are recomputed from the rows, under their row locks; the difference of
--   their terms before and after is applied to the matched counters, agg_issues and
--   agg_issue_pairs. A pair is matched when every condition has a judged outcome.
-- * agg_seconds: a histogram of job_seconds per (experiment, condition, replicate, agent).
--
-- Only a job's sample 0 counts (`generation.samples`: the sample that feeds the swarm, the job a
-- one-sample run has): the outcomes of other samples are left out on entry, as every file that
-- counts jobs leaves them out.
--
-- Every upsert adds rows in key order (one lock order for every writer) and skips rows that add 0.

CREATE OR REPLACE FUNCTION swarmq_agg_outcomes(olds outcomes[], news outcomes[])
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $fn$
-- Planned once per session: a custom plan of the last statement costs more than running it.
DECLARE
    before agg_pairs[];
BEGIN
    olds := ARRAY(SELECT ROW(o.*)::outcomes FROM unnest(olds) o JOIN jobs j ON j.id = o.job_id
                  WHERE j.sample = 0);
    news := ARRAY(SELECT ROW(o.*)::outcomes FROM unnest(news) o JOIN jobs j ON j.id = o.job_id
                  WHERE j.sample = 0);
    -- Lock (creating where missing) every pair the change touches, in key order; keep its state.
    WITH touched AS (
        SELECT DISTINCT j.experiment_id, j.replicate, j.instance_id
        FROM (SELECT job_id FROM unnest(olds) UNION SELECT job_id FROM unnest(news)) x
        JOIN jobs j ON j.id = x.job_id
    ), locked AS (
        INSERT INTO agg_pairs AS p (experiment_id, replicate, instance_id)
        SELECT * FROM touched ORDER BY 1, 2, 3
        ON CONFLICT (experiment_id, replicate, instance_id) DO UPDATE SET judged = p.judged
        RETURNING p.*
    )
    SELECT coalesce(array_agg(ROW(l.*)::agg_pairs), '{}') INTO before FROM locked l;
    IF cardinality(before) = 0 THEN
        RETURN;  -- no sample 0, or the jobs went with their experiment (its aggregates by cascade)
    END IF;

    -- A new statement, hence a new snapshot: what committed before we held the locks is counted.
    WITH src AS (
        SELECT -1 AS sign, * FROM unnest(olds)
        UNION ALL
        SELECT 1, * FROM unnest(news)
    ),
    conds AS (  -- each experiment's condition names, in bit order
        SELECT id AS experiment_id, swarmq_agg_conditions(id) AS names FROM experiments
        WHERE id IN (SELECT DISTINCT experiment_id FROM unnest(before))
    ),
    after AS (  -- the touched pairs' state, from the rows (counted outcomes only)
        SELECT a.experiment_id, a.replicate, a.instance_id, min(i.task_type) AS task_type,
               coalesce(bit_or(1::bigint << (c.k - 1)::int) FILTER (
                   WHERE o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false)
               ), 0) AS judged,
               coalesce(bit_or(1::bigint << (c.k - 1)::int) FILTER (
                   WHERE o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false)
                     AND coalesce(o.success, false)
               ), 0) AS succeeded,
               array_agg(coalesce(o.agent_id, -1) ORDER BY c.k) AS agents
        FROM unnest(before) a
        JOIN issues i ON i.experiment_id = a.experiment_id AND i.instance_id = a.instance_id
        JOIN conds ON conds.experiment_id = a.experiment_id
        CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS c(condition, k)
        LEFT JOIN jobs j ON j.experiment_id = a.experiment_id AND j.condition = c.condition
                        AND j.replicate = a.replicate AND j.instance_id = a.instance_id
                        AND j.sample = 0
        LEFT JOIN outcomes o ON o.job_id = j.id AND o.folded
        GROUP BY a.experiment_id, a.replicate, a.instance_id
    ),
    saved AS (
        UPDATE agg_pairs p
        SET task_type = a.task_type, judged = a.judged, succeeded = a.succeeded, agents = a.agents
        FROM after a
        WHERE (p.experiment_id, p.replicate, p.instance_id)
            = (a.experiment_id, a.replicate, a.instance_id)
        RETURNING 1
    ),
    ps AS (  -- each pair's state before (sign -1) and after (sign 1)
        SELECT -1 AS sign, * FROM unnest(before)
        UNION ALL
        SELECT 1, * FROM after
    ),
    terms AS (  -- each judged condition of each pair state: its success s, whether matched m
        SELECT ps.sign, ps.experiment_id, ps.replicate, ps.instance_id, ps.task_type,
               c.condition, ps.agents[c.k] AS agent,
               ((ps.succeeded >> (c.k - 1)::int) & 1)::int AS s,
               (ps.judged = swarmq_agg_full(cardinality(conds.names)))::int AS m
        FROM ps JOIN conds ON conds.experiment_id = ps.experiment_id
        CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS c(condition, k)
        WHERE ((ps.judged >> (c.k - 1)::int) & 1) = 1
    ),
    cells AS (
        -- Twice per outcome: in its agent's cell (m.own = m.sign), and out of cell -1 (m.own = 0).
        SELECT j.experiment_id, j.condition, j.replicate, i.task_type, m.agent,
               m.sign * 1 AS jobs,
               m.sign * (j.status = 'done')::int AS done,
               m.sign * (j.status = 'failed')::int AS failed,
               m.own * (o.id IS NOT NULL)::int AS outcomes,
               m.own * coalesce(o.score_status = 'error', false)::int AS scoring_errors,
               m.own * (o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false))::int
                   AS judged,
               m.own * coalesce(o.success, false)::int AS successes,
               m.own * (o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false)
                        AND coalesce(o.success, false))::int AS judged_successes,
               m.own * coalesce(o.resolved, false)::int AS resolved,
               m.own * (o.resolved IS NOT NULL)::int AS imported,
               m.own * (o.job_seconds IS NOT NULL)::int AS seconds_n,
               m.own * coalesce(o.job_seconds::numeric, 0) AS seconds_sum,
               m.own * coalesce(o.completion_tokens, 0) AS tokens_sum,
               m.own * (o.generation_seconds IS NOT NULL)::int AS generation_n,
               m.own * coalesce(o.generation_seconds::numeric, 0) AS generation_sum,
               m.own * coalesce(o.finish_reason = 'length', false)::int AS length_n,
               m.own * (o.finish_reason IS NOT NULL)::int AS finish_n,
               m.own * (o.error IS NOT NULL)::int AS errors_n,
               0 AS matched,
               0 AS matched_successes
        FROM src o
        JOIN jobs j ON j.id = o.job_id
        JOIN issues i ON i.id = j.issue_id
        CROSS JOIN LATERAL (
            VALUES (o.sign, coalesce(o.agent_id, -1), o.sign), (-o.sign, -1, 0)
        ) AS m(sign, agent, own)
        UNION ALL
        -- The matched set's judged outcomes and successes, in each one's cell; no other counter.
        SELECT experiment_id, condition, replicate, task_type, agent,
               0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
               sign * m AS matched,
               sign * m * s AS matched_successes
        FROM terms
    ),
    c1 AS (
        INSERT INTO agg_cells AS t (
            experiment_id, condition, replicate, task_type, agent,
            jobs, done, failed, outcomes, scoring_errors, judged, successes, judged_successes,
            resolved, imported, seconds_n, seconds_sum, tokens_sum, generation_n, generation_sum,
            length_n, finish_n, errors_n, matched, matched_successes
        )
        SELECT experiment_id, condition, replicate, task_type, agent,
               sum(jobs), sum(done), sum(failed), sum(outcomes), sum(scoring_errors), sum(judged),
               sum(successes), sum(judged_successes), sum(resolved), sum(imported), sum(seconds_n),
               sum(seconds_sum), sum(tokens_sum), sum(generation_n), sum(generation_sum),
               sum(length_n), sum(finish_n), sum(errors_n), sum(matched), sum(matched_successes)
        FROM cells
        GROUP BY experiment_id, condition, replicate, task_type, agent
        HAVING sum(jobs) <> 0 OR sum(done) <> 0 OR sum(failed) <> 0 OR sum(outcomes) <> 0
            OR sum(scoring_errors) <> 0 OR sum(judged) <> 0 OR sum(successes) <> 0
            OR sum(judged_successes) <> 0 OR sum(resolved) <> 0 OR sum(imported) <> 0
            OR sum(seconds_n) <> 0 OR sum(seconds_sum) <> 0 OR sum(tokens_sum) <> 0
            OR sum(generation_n) <> 0 OR sum(generation_sum) <> 0 OR sum(length_n) <> 0
            OR sum(finish_n) <> 0 OR sum(errors_n) <> 0 OR sum(matched) <> 0
            OR sum(matched_successes) <> 0
        ORDER BY experiment_id, condition, replicate, task_type, agent
        ON CONFLICT (experiment_id, condition, replicate, task_type, agent) DO UPDATE SET
            jobs = t.jobs + excluded.jobs,
            done = t.done + excluded.done,
            failed = t.failed + excluded.failed,
            outcomes = t.outcomes + excluded.outcomes,
            scoring_errors = t.scoring_errors + excluded.scoring_errors,
            judged = t.judged + excluded.judged,
            successes = t.successes + excluded.successes,
            judged_successes = t.judged_successes + excluded.judged_successes,
            resolved = t.resolved + excluded.resolved,
            imported = t.imported + excluded.imported,
            seconds_n = t.seconds_n + excluded.seconds_n,
            seconds_sum = t.seconds_sum + excluded.seconds_sum,
            tokens_sum = t.tokens_sum + excluded.tokens_sum,
            generation_n = t.generation_n + excluded.generation_n,
            generation_sum = t.generation_sum + excluded.generation_sum,
            length_n = t.length_n + excluded.length_n,
            finish_n = t.finish_n + excluded.finish_n,
            errors_n = t.errors_n + excluded.errors_n,
            matched = t.matched + excluded.matched,
            matched_successes = t.matched_successes + excluded.matched_successes
        RETURNING 1
    ),
    c2 AS (
        INSERT INTO agg_seconds AS t (experiment_id, condition, replicate, agent, bucket, n)
        SELECT j.experiment_id, j.condition, j.replicate, coalesce(o.agent_id, -1),
               swarmq_agg_bucket(o.job_seconds) AS bucket, sum(o.sign)
        FROM src o JOIN jobs j ON j.id = o.job_id
        WHERE o.job_seconds IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
        HAVING sum(o.sign) <> 0
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (experiment_id, condition, replicate, agent, bucket) DO UPDATE SET
            n = t.n + excluded.n
        RETURNING 1
    ),
    c3 AS (
        INSERT INTO agg_issues AS t (
            experiment_id, condition, instance_id, judged, successes, matched, matched_successes
        )
        SELECT experiment_id, condition, instance_id,
               sum(sign), sum(sign * s), sum(sign * m), sum(sign * m * s)
        FROM terms
        GROUP BY experiment_id, condition, instance_id
        HAVING sum(sign) <> 0 OR sum(sign * s) <> 0 OR sum(sign * m) <> 0 OR sum(sign * m * s) <> 0
        ORDER BY experiment_id, condition, instance_id
        ON CONFLICT (experiment_id, condition, instance_id) DO UPDATE SET
            judged = t.judged + excluded.judged,
            successes = t.successes + excluded.successes,
            matched = t.matched + excluded.matched,
            matched_successes = t.matched_successes + excluded.matched_successes
        RETURNING 1
    )
    -- Each pair judged in conditions a < b: one (issue, replicate) pair and its a - b success.
    -- (From ps, not terms: a self-join of that CTE gets a nested loop.)
    INSERT INTO agg_issue_pairs AS t (experiment_id, a, b, instance_id, pairs, diff)
    SELECT experiment_id, a, b, instance_id, sum(pairs), sum(diff)
    FROM (
        SELECT ps.experiment_id, x.condition AS a, y.condition AS b, ps.instance_id,
               ps.sign AS pairs,
               ps.sign * (((ps.succeeded >> (x.k - 1)::int) & 1)::int
                          - ((ps.succeeded >> (y.k - 1)::int) & 1)::int) AS diff
        FROM ps JOIN conds ON conds.experiment_id = ps.experiment_id
        CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS x(condition, k)
        CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS y(condition, k)
        WHERE x.k < y.k
          AND ((ps.judged >> (x.k - 1)::int) & 1) = 1
          AND ((ps.judged >> (y.k - 1)::int) & 1) = 1
    ) d
    GROUP BY experiment_id, a, b, instance_id
    HAVING sum(pairs) <> 0 OR sum(diff) <> 0
    ORDER BY experiment_id, a, b, instance_id
    ON CONFLICT (experiment_id, a, b, instance_id) DO UPDATE SET
        pairs = t.pairs + excluded.pairs,
        diff = t.diff + excluded.diff;
END
$fn$;
