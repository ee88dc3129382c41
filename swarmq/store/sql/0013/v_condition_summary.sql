-- v_condition_summary: per experiment and condition, for psql users. It reads the aggregates'
-- cells and adds the counters of outcomes not folded yet (their jobs' counters are in cell -1
-- already), so it is exact at every moment without writing. Each part is summed to (experiment,
-- condition) before the union: the planner keeps the plan it has over the cells alone.
-- Only sample 0 of each (condition, replicate, issue) counts, as in the aggregates.

CREATE OR REPLACE VIEW v_condition_summary AS
SELECT e.name AS experiment, c.condition,
       sum(c.jobs)::bigint AS jobs,
       sum(c.done)::bigint AS done,
       sum(c.failed)::bigint AS failed,
       sum(c.outcomes)::bigint AS outcomes,
       sum(c.scoring_errors)::bigint AS scoring_errors,
       sum(c.successes)::bigint AS successes,
       sum(c.judged_successes) / nullif(sum(c.judged), 0) AS success_rate,
       sum(c.resolved)::bigint AS resolved,
       sum(c.imported)::bigint AS imported,
       (sum(c.seconds_sum) / nullif(sum(c.seconds_n), 0))::double precision AS mean_job_seconds,
       CASE WHEN sum(c.generation_n) > 0
            THEN (sum(c.tokens_sum) / nullif(sum(c.generation_sum), 0))::double precision END
           AS generation_tokens_per_second,
       sum(c.length_n) / nullif(sum(c.finish_n), 0) AS share_max_tokens
FROM (
    SELECT experiment_id, condition,
           sum(jobs)::bigint AS jobs, sum(done)::bigint AS done, sum(failed)::bigint AS failed,
           sum(outcomes)::bigint AS outcomes, sum(scoring_errors)::bigint AS scoring_errors,
           sum(judged)::bigint AS judged, sum(successes)::bigint AS successes,
           sum(judged_successes)::bigint AS judged_successes, sum(resolved)::bigint AS resolved,
           sum(imported)::bigint AS imported, sum(seconds_n)::bigint AS seconds_n,
           sum(seconds_sum) AS seconds_sum, sum(tokens_sum)::bigint AS tokens_sum,
           sum(generation_n)::bigint AS generation_n, sum(generation_sum) AS generation_sum,
           sum(length_n)::bigint AS length_n, sum(finish_n)::bigint AS finish_n
    FROM agg_cells
    GROUP BY experiment_id, condition
    UNION ALL
    SELECT experiment_id, condition,
           0, 0, 0,
           sum(outcomes)::bigint, sum(scoring_errors)::bigint, sum(judged)::bigint,
           sum(successes)::bigint, sum(judged_successes)::bigint, sum(resolved)::bigint,
           sum(imported)::bigint, sum(seconds_n)::bigint, sum(seconds_sum), sum(tokens_sum)::bigint,
           sum(generation_n)::bigint, sum(generation_sum), sum(length_n)::bigint,
           sum(finish_n)::bigint
    FROM (
        SELECT j.experiment_id, j.condition,
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
               (o.finish_reason IS NOT NULL)::int AS finish_n
        FROM outcomes o JOIN jobs j ON j.id = o.job_id
        WHERE NOT o.folded AND j.sample = 0
    ) u
    GROUP BY experiment_id, condition
) c
JOIN experiments e ON e.id = c.experiment_id
GROUP BY e.name, c.condition;
