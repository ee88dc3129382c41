-- swarmq_agg_rebuild(e): recount experiment e's results aggregates from its rows (`swarmq db
-- rebuild-aggregates`, and the truncate triggers), in one statement over the experiment. The
-- counters and the pair state are written as in swarmq_agg_outcomes (a test checks that they are
-- the same text): a rebuild is an independent recount by the same definitions, and the tests
-- compare the maintained tables with it. Only a job's sample 0 counts, as there.

CREATE OR REPLACE FUNCTION swarmq_agg_rebuild(e integer)
 RETURNS void
 LANGUAGE plpgsql
AS $fn$
BEGIN
    -- No write to jobs or outcomes may interleave with the recount.
    LOCK TABLE jobs, outcomes IN SHARE ROW EXCLUSIVE MODE;
    UPDATE outcomes o SET folded = true
    FROM jobs j WHERE j.id = o.job_id AND j.experiment_id = e AND NOT o.folded;
    DELETE FROM agg_cells WHERE experiment_id = e;
    DELETE FROM agg_seconds WHERE experiment_id = e;
    DELETE FROM agg_pairs WHERE experiment_id = e;
    DELETE FROM agg_issues WHERE experiment_id = e;
    DELETE FROM agg_issue_pairs WHERE experiment_id = e;

    WITH touched AS (  -- every pair with an outcome
        SELECT DISTINCT j.experiment_id, j.replicate, j.instance_id
        FROM jobs j JOIN outcomes o ON o.job_id = j.id
        WHERE j.experiment_id = e AND j.sample = 0
    ),
    conds AS (  -- the condition names, in bit order
        SELECT id AS experiment_id, swarmq_agg_conditions(id) AS names FROM experiments WHERE id = e
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
        FROM touched a
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
        INSERT INTO agg_pairs SELECT * FROM after RETURNING 1
    ),
    ps AS (SELECT 1 AS sign, * FROM after),
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
        -- Every job in its outcome's agent's cell (-1: none), its own counters and its outcome's.
        SELECT j.experiment_id, j.condition, j.replicate, i.task_type,
               coalesce(o.agent_id, -1) AS agent,
               1 AS jobs,
               (j.status = 'done')::int AS done,
               (j.status = 'failed')::int AS failed,
               (o.id IS NOT NULL)::int AS outcomes,
               coalesce(o.score_status = 'error', false)::int AS scoring_errors,
               (o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false))::int AS judged,
               coalesce(o.success, false)::int AS successes,
               (o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false)
                AND coalesce(o.success, false))::int AS judged_successes,
               coalesce(o.resolved, false)::int AS resolved,
               (o.resolved IS NOT NULL)::int AS imported,
               (o.job_seconds IS NOT NULL)::int AS seconds_n,
               coalesce(o.job_seconds::numeric, 0) AS seconds_sum,
               coalesce(o.completion_tokens, 0) AS tokens_sum,
               (o.generation_seconds IS NOT NULL)::int AS generation_n,
               coalesce(o.generation_seconds::numeric, 0) AS generation_sum,
               coalesce(o.finish_reason = 'length', false)::int AS length_n,
               (o.finish_reason IS NOT NULL)::int AS finish_n,
               (o.error IS NOT NULL)::int AS errors_n,
               0 AS matched,
               0 AS matched_successes
        FROM jobs j
        JOIN issues i ON i.id = j.issue_id
        LEFT JOIN outcomes o ON o.job_id = j.id
        WHERE j.experiment_id = e AND j.sample = 0
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
               swarmq_agg_bucket(o.job_seconds) AS bucket, count(*)
        FROM jobs j JOIN outcomes o ON o.job_id = j.id
        WHERE j.experiment_id = e AND j.sample = 0 AND o.job_seconds IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
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
