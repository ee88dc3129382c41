-- swarmq_agg_outcomes, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_outcomes(olds outcomes[], news outcomes[]) RETURNS void
    LANGUAGE plpgsql
-- Planned once per session: a custom plan of the statement below costs 2-3 ms, more than running
    -- it.
SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    before agg_pairs[];
BEGIN
    -- Lock (creating where missing) every pair the change touches, in key order, and keep its
        -- state.
    WITH aff AS (
        SELECT DISTINCT j.experiment_id, j.replicate, j.instance_id
        FROM (SELECT job_id FROM unnest(olds) UNION SELECT job_id FROM unnest(news)) x JOIN jobs j
            ON j.id = x.job_id
    ), locked AS (
        INSERT INTO agg_pairs AS p (experiment_id, replicate, instance_id)
        SELECT * FROM aff ORDER BY 1, 2, 3
        ON CONFLICT (experiment_id, replicate, instance_id) DO UPDATE SET judged = p.judged
        RETURNING p.*
    )
    SELECT coalesce(array_agg(ROW(l.*)::agg_pairs), '{}') INTO before FROM locked l;
    IF cardinality(before) = 0 THEN
        RETURN;  -- the jobs are gone with their experiment, whose aggregates go by cascade
    END IF;
    -- A new statement, hence a new snapshot: whatever committed before we held the locks is
        -- counted.
    WITH src AS (
    SELECT o.sign, o.id, o.agent_id, o.success, o.score_status, o.resolved, o.job_seconds,
        o.completion_tokens,
           o.generation_seconds, o.finish_reason, o.error, j.experiment_id, j.condition,
               j.replicate, j.status,
           i.task_type
    FROM (SELECT -1 AS sign, * FROM unnest(olds) UNION ALL SELECT 1, * FROM unnest(news)) o
    JOIN jobs j ON j.id = o.job_id JOIN issues i ON i.id = j.issue_id),
    aff AS (SELECT experiment_id, replicate, instance_id FROM unnest(before)),
    conds AS (SELECT id AS experiment_id, swarmq_agg_conditions(id) AS names FROM experiments WHERE
        id IN (SELECT DISTINCT experiment_id FROM aff)),
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
    saved AS (
        UPDATE agg_pairs p SET task_type = a.task_type, judged = a.judged, succeeded = a.succeeded,
            agents = a.agents
        FROM after a
        WHERE (p.experiment_id, p.replicate, p.instance_id) = (a.experiment_id, a.replicate,
            a.instance_id)
        RETURNING 1
    ),
    ps AS (SELECT -1 AS sign, * FROM unnest(before) UNION ALL SELECT 1, * FROM after),

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
            j.condition, j.replicate, o.task_type AS task_type, coalesce(o.agent_id, -1) AS agent,
            (o.sign) * (1)::bigint AS jobs, (o.sign) * ((j.status = 'done')::int)::bigint AS done,
            (o.sign) * ((j.status = 'failed')::int)::bigint AS failed, (o.sign) * (CASE WHEN o.id IS
            NULL THEN 0 ELSE 1 END)::bigint AS outcomes, (o.sign) * (CASE WHEN o.id IS NULL THEN 0
            ELSE coalesce(o.score_status = 'error', false)::int END)::bigint AS scoring_errors,
            (o.sign) * (CASE WHEN o.id IS NULL THEN 0 ELSE (o.id IS NOT NULL AND NOT
            coalesce(o.score_status = 'error', false))::int END)::bigint AS judged, (o.sign) * (CASE
            WHEN o.id IS NULL THEN 0 ELSE coalesce(o.success, false)::int END)::bigint AS successes,
            (o.sign) * (CASE WHEN o.id IS NULL THEN 0 ELSE ((o.id IS NOT NULL AND NOT
            coalesce(o.score_status = 'error', false)) AND coalesce(o.success, false))::int
            END)::bigint AS judged_successes, (o.sign) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            coalesce(o.resolved, false)::int END)::bigint AS resolved, (o.sign) * (CASE WHEN o.id IS
            NULL THEN 0 ELSE (o.resolved IS NOT NULL)::int END)::bigint AS imported, (o.sign) *
            (CASE WHEN o.id IS NULL THEN 0 ELSE (o.job_seconds IS NOT NULL)::int END)::bigint AS
            seconds_n, (o.sign) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            coalesce(o.job_seconds::numeric, 0) END)::numeric AS seconds_sum, (o.sign) * (CASE WHEN
            o.id IS NULL THEN 0 ELSE o.completion_tokens END)::bigint AS tokens_sum, (o.sign) *
            (CASE WHEN o.id IS NULL THEN 0 ELSE (o.generation_seconds IS NOT NULL)::int END)::bigint
            AS generation_n, (o.sign) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            coalesce(o.generation_seconds::numeric, 0) END)::numeric AS generation_sum, (o.sign) *
            (CASE WHEN o.id IS NULL THEN 0 ELSE coalesce(o.finish_reason = 'length', false)::int
            END)::bigint AS length_n, (o.sign) * (CASE WHEN o.id IS NULL THEN 0 ELSE
            (o.finish_reason IS NOT NULL)::int END)::bigint AS finish_n, (o.sign) * (CASE WHEN o.id
            IS NULL THEN 0 ELSE (o.error IS NOT NULL)::int END)::bigint AS errors_n, (o.sign) *
            (0)::bigint AS matched, (o.sign) * (0)::bigint AS matched_successes FROM src o CROSS
            JOIN LATERAL (SELECT o.experiment_id, o.condition, o.replicate, o.status) j UNION ALL
            SELECT j.experiment_id, j.condition, j.replicate, o.task_type AS task_type, -1 AS agent,
            (-o.sign) * (1)::bigint AS jobs, (-o.sign) * ((j.status = 'done')::int)::bigint AS done,
            (-o.sign) * ((j.status = 'failed')::int)::bigint AS failed, (-o.sign) * (0)::bigint AS
            outcomes, (-o.sign) * (0)::bigint AS scoring_errors, (-o.sign) * (0)::bigint AS judged,
            (-o.sign) * (0)::bigint AS successes, (-o.sign) * (0)::bigint AS judged_successes,
            (-o.sign) * (0)::bigint AS resolved, (-o.sign) * (0)::bigint AS imported, (-o.sign) *
            (0)::bigint AS seconds_n, (-o.sign) * (0)::numeric AS seconds_sum, (-o.sign) *
            (0)::bigint AS tokens_sum, (-o.sign) * (0)::bigint AS generation_n, (-o.sign) *
            (0)::numeric AS generation_sum, (-o.sign) * (0)::bigint AS length_n, (-o.sign) *
            (0)::bigint AS finish_n, (-o.sign) * (0)::bigint AS errors_n, (-o.sign) * (0)::bigint AS
            matched, (-o.sign) * (0)::bigint AS matched_successes FROM src o CROSS JOIN LATERAL
            (SELECT o.experiment_id, o.condition, o.replicate, o.status) j UNION ALL SELECT
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
            swarmq_agg_bucket(o.job_seconds) AS bucket, (o.sign)::bigint AS n FROM src o CROSS JOIN
            LATERAL (SELECT o.experiment_id, o.condition, o.replicate, o.status) j WHERE
            o.job_seconds IS NOT NULL) d GROUP BY experiment_id, condition, replicate, agent, bucket
            HAVING sum(n) <> 0 ORDER BY experiment_id, condition, replicate, agent, bucket ON
            CONFLICT (experiment_id, condition, replicate, agent, bucket) DO UPDATE SET n = t.n +
            excluded.n RETURNING 1),
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
