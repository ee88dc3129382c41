-- swarmq_agg_rebuild, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_rebuild(e integer) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    -- No write to jobs or outcomes may interleave with the recount.
    LOCK TABLE jobs, outcomes IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM agg_cells WHERE experiment_id = e;
    DELETE FROM agg_seconds WHERE experiment_id = e;
    DELETE FROM agg_pairs WHERE experiment_id = e;
    DELETE FROM agg_issues WHERE experiment_id = e;
    DELETE FROM agg_issue_pairs WHERE experiment_id = e;
    WITH aff AS (
        SELECT DISTINCT j.experiment_id, j.replicate, j.instance_id
        FROM jobs j JOIN outcomes o ON o.job_id = j.id WHERE j.experiment_id = e
    ),
    conds AS (SELECT id AS experiment_id, swarmq_agg_conditions(id) AS names FROM experiments WHERE
        id IN (e)),
    after AS (
    SELECT a.experiment_id, a.replicate, a.instance_id, min(i.task_type) AS task_type,
           coalesce(bit_or(1::bigint << (c.k - 1)::int) FILTER (WHERE (o.id IS NOT NULL AND NOT
               coalesce(o.score_status = 'error', false))), 0) AS judged,
           coalesce(bit_or(1::bigint << (c.k - 1)::int) FILTER (WHERE (o.id IS NOT NULL AND NOT
               coalesce(o.score_status = 'error', false)) AND coalesce(o.success, false)), 0) AS
               succeeded,
           array_agg(coalesce(o.agent_id, -1) ORDER BY c.k) AS agents
    FROM aff a
    JOIN issues i ON i.experiment_id = a.experiment_id AND i.instance_id = a.instance_id
    JOIN conds ON conds.experiment_id = a.experiment_id
    CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS c(condition, k)
    LEFT JOIN jobs j ON j.experiment_id = a.experiment_id AND j.condition = c.condition
                    AND j.replicate = a.replicate AND j.instance_id = a.instance_id
    LEFT JOIN outcomes o ON o.job_id = j.id
    GROUP BY a.experiment_id, a.replicate, a.instance_id
),
    saved AS (INSERT INTO agg_pairs SELECT * FROM after RETURNING 1),
    ps AS (SELECT 1 AS sign, * FROM after),

        terms AS (
    SELECT ps.sign, ps.experiment_id, ps.replicate, ps.instance_id, ps.task_type, c.condition, c.k,
           ps.agents[c.k] AS agent, ((ps.succeeded >> (c.k - 1)::int) & 1)::int AS s,
           (ps.judged = swarmq_agg_full(cardinality(conds.names)))::int AS m
    FROM ps JOIN conds ON conds.experiment_id = ps.experiment_id
    CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS c(condition, k)
    WHERE ((ps.judged >> (c.k - 1)::int) & 1) = 1
),
        c1 AS (INSERT INTO agg_cells AS t (experiment_id, condition, replicate, task_type, agent,
            jobs, done, failed, outcomes, scoring_errors, judged, successes, judged_successes,
            resolved, imported, seconds_n, seconds_sum, tokens_sum, generation_n, generation_sum,
            length_n, finish_n, errors_n, matched, matched_successes) SELECT experiment_id,
            condition, replicate, task_type, agent, sum(jobs) AS jobs, sum(done) AS done,
            sum(failed) AS failed, sum(outcomes) AS outcomes, sum(scoring_errors) AS scoring_errors,
            sum(judged) AS judged, sum(successes) AS successes, sum(judged_successes) AS
            judged_successes, sum(resolved) AS resolved, sum(imported) AS imported, sum(seconds_n)
            AS seconds_n, sum(seconds_sum) AS seconds_sum, sum(tokens_sum) AS tokens_sum,
            sum(generation_n) AS generation_n, sum(generation_sum) AS generation_sum, sum(length_n)
            AS length_n, sum(finish_n) AS finish_n, sum(errors_n) AS errors_n, sum(matched) AS
            matched, sum(matched_successes) AS matched_successes FROM (SELECT j.experiment_id,
            j.condition, j.replicate, i.task_type AS task_type, coalesce(o.agent_id, -1) AS agent,
            (1) * (1)::bigint AS jobs, (1) * ((j.status = 'done')::int)::bigint AS done, (1) *
            ((j.status = 'failed')::int)::bigint AS failed, (1) * (CASE WHEN o.id IS NULL THEN 0
            ELSE 1 END)::bigint AS outcomes, (1) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            coalesce(o.score_status = 'error', false)::int END)::bigint AS scoring_errors, (1) *
            (CASE WHEN o.id IS NULL THEN 0 ELSE (o.id IS NOT NULL AND NOT coalesce(o.score_status =
            'error', false))::int END)::bigint AS judged, (1) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            coalesce(o.success, false)::int END)::bigint AS successes, (1) * (CASE WHEN o.id IS NULL
            THEN 0 ELSE ((o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false)) AND
            coalesce(o.success, false))::int END)::bigint AS judged_successes, (1) * (CASE WHEN o.id
            IS NULL THEN 0 ELSE coalesce(o.resolved, false)::int END)::bigint AS resolved, (1) *
            (CASE WHEN o.id IS NULL THEN 0 ELSE (o.resolved IS NOT NULL)::int END)::bigint AS
            imported, (1) * (CASE WHEN o.id IS NULL THEN 0 ELSE (o.job_seconds IS NOT NULL)::int
            END)::bigint AS seconds_n, (1) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            coalesce(o.job_seconds::numeric, 0) END)::numeric AS seconds_sum, (1) * (CASE WHEN o.id
            IS NULL THEN 0 ELSE o.completion_tokens END)::bigint AS tokens_sum, (1) * (CASE WHEN
            o.id IS NULL THEN 0 ELSE (o.generation_seconds IS NOT NULL)::int END)::bigint AS
            generation_n, (1) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            coalesce(o.generation_seconds::numeric, 0) END)::numeric AS generation_sum, (1) * (CASE
            WHEN o.id IS NULL THEN 0 ELSE coalesce(o.finish_reason = 'length', false)::int
            END)::bigint AS length_n, (1) * (CASE WHEN o.id IS NULL THEN 0 ELSE (o.finish_reason IS
            NOT NULL)::int END)::bigint AS finish_n, (1) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            (o.error IS NOT NULL)::int END)::bigint AS errors_n, (1) * (0)::bigint AS matched, (1) *
            (0)::bigint AS matched_successes FROM jobs j JOIN issues i ON i.id = j.issue_id LEFT
            JOIN outcomes o ON o.job_id = j.id WHERE j.experiment_id = e UNION ALL SELECT
            experiment_id, condition, replicate, task_type, agent, 0::bigint AS jobs, 0::bigint AS
            done, 0::bigint AS failed, 0::bigint AS outcomes, 0::bigint AS scoring_errors, 0::bigint
            AS judged, 0::bigint AS successes, 0::bigint AS judged_successes, 0::bigint AS resolved,
            0::bigint AS imported, 0::bigint AS seconds_n, 0::numeric AS seconds_sum, 0::bigint AS
            tokens_sum, 0::bigint AS generation_n, 0::numeric AS generation_sum, 0::bigint AS
            length_n, 0::bigint AS finish_n, 0::bigint AS errors_n, sign * m AS matched, sign * m *
            s AS matched_successes FROM terms) d GROUP BY experiment_id, condition, replicate,
            task_type, agent HAVING sum(jobs) <> 0 OR sum(done) <> 0 OR sum(failed) <> 0 OR
            sum(outcomes) <> 0 OR sum(scoring_errors) <> 0 OR sum(judged) <> 0 OR sum(successes) <>
            0 OR sum(judged_successes) <> 0 OR sum(resolved) <> 0 OR sum(imported) <> 0 OR
            sum(seconds_n) <> 0 OR sum(seconds_sum) <> 0 OR sum(tokens_sum) <> 0 OR
            sum(generation_n) <> 0 OR sum(generation_sum) <> 0 OR sum(length_n) <> 0 OR
            sum(finish_n) <> 0 OR sum(errors_n) <> 0 OR sum(matched) <> 0 OR sum(matched_successes)
            <> 0 ORDER BY experiment_id, condition, replicate, task_type, agent ON CONFLICT
            (experiment_id, condition, replicate, task_type, agent) DO UPDATE SET jobs = t.jobs +
            excluded.jobs, done = t.done + excluded.done, failed = t.failed + excluded.failed,
            outcomes = t.outcomes + excluded.outcomes, scoring_errors = t.scoring_errors +
            excluded.scoring_errors, judged = t.judged + excluded.judged, successes = t.successes +
            excluded.successes, judged_successes = t.judged_successes + excluded.judged_successes,
            resolved = t.resolved + excluded.resolved, imported = t.imported + excluded.imported,
            seconds_n = t.seconds_n + excluded.seconds_n, seconds_sum = t.seconds_sum +
            excluded.seconds_sum, tokens_sum = t.tokens_sum + excluded.tokens_sum, generation_n =
            t.generation_n + excluded.generation_n, generation_sum = t.generation_sum +
            excluded.generation_sum, length_n = t.length_n + excluded.length_n, finish_n =
            t.finish_n + excluded.finish_n, errors_n = t.errors_n + excluded.errors_n, matched =
            t.matched + excluded.matched, matched_successes = t.matched_successes +
            excluded.matched_successes
               RETURNING 1),
        c2 AS (INSERT INTO agg_seconds AS t (experiment_id, condition, replicate, agent, bucket, n)
            SELECT experiment_id, condition, replicate, agent, bucket, sum(n) AS n FROM (SELECT
            j.experiment_id, j.condition, j.replicate, coalesce(o.agent_id, -1) AS agent,
            swarmq_agg_bucket(o.job_seconds) AS bucket, (1)::bigint AS n FROM jobs j JOIN outcomes o
            ON o.job_id = j.id AND j.experiment_id = e WHERE o.job_seconds IS NOT NULL) d GROUP BY
            experiment_id, condition, replicate, agent, bucket HAVING sum(n) <> 0 ORDER BY
            experiment_id, condition, replicate, agent, bucket ON CONFLICT (experiment_id,
            condition, replicate, agent, bucket) DO UPDATE SET n = t.n + excluded.n RETURNING 1),
        c3 AS (INSERT INTO agg_issues AS t (experiment_id, condition, instance_id, judged,
            successes, matched, matched_successes) SELECT experiment_id, condition, instance_id,
            sum(judged) AS judged, sum(successes) AS successes, sum(matched) AS matched,
            sum(matched_successes) AS matched_successes FROM (SELECT experiment_id, condition,
            instance_id, sign AS judged, sign * s AS successes, sign * m AS matched, sign * m * s AS
            matched_successes FROM terms) d GROUP BY experiment_id, condition, instance_id HAVING
            sum(judged) <> 0 OR sum(successes) <> 0 OR sum(matched) <> 0 OR sum(matched_successes)
            <> 0 ORDER BY experiment_id, condition, instance_id ON CONFLICT (experiment_id,
            condition, instance_id) DO UPDATE SET judged = t.judged + excluded.judged, successes =
            t.successes + excluded.successes, matched = t.matched + excluded.matched,
            matched_successes = t.matched_successes + excluded.matched_successes RETURNING 1)
        INSERT INTO agg_issue_pairs AS t (experiment_id, a, b, instance_id, pairs, diff) SELECT
            experiment_id, a, b, instance_id, sum(pairs) AS pairs, sum(diff) AS diff FROM (SELECT
            ps.experiment_id, x.condition AS a, y.condition AS b, ps.instance_id, ps.sign AS pairs,
               ps.sign * (((ps.succeeded >> (x.k - 1)::int) & 1)::int - ((ps.succeeded >> (y.k -
                1)::int) & 1)::int) AS diff
        FROM ps JOIN conds ON conds.experiment_id = ps.experiment_id
        CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS x(condition, k)
        CROSS JOIN LATERAL unnest(conds.names) WITH ORDINALITY AS y(condition, k)
        WHERE x.k < y.k AND ((ps.judged >> (x.k - 1)::int) & 1)::int = 1 AND ((ps.judged >> (y.k -
            1)::int) & 1)::int = 1) d GROUP BY experiment_id, a, b, instance_id HAVING sum(pairs) <>
            0 OR sum(diff) <> 0 ORDER BY experiment_id, a, b, instance_id ON CONFLICT
            (experiment_id, a, b, instance_id) DO UPDATE SET pairs = t.pairs + excluded.pairs, diff
            = t.diff + excluded.diff;
END
$fn$;
