-- v_agent_summary: per experiment, condition, replicate and agent (NULL: failure outcomes), for
-- psql users: the aggregates' cells plus the counters of outcomes not folded yet, as
-- v_condition_summary reads them.
-- Only sample 0 of each (condition, replicate, issue) counts, as in the aggregates.

CREATE OR REPLACE VIEW v_agent_summary AS
SELECT e.name AS experiment, c.condition, c.replicate, nullif(c.agent, -1) AS agent_id,
       sum(c.outcomes)::bigint AS outcomes,
       sum(c.scoring_errors)::bigint AS scoring_errors,
       sum(c.judged)::bigint AS judged,
       sum(c.successes)::bigint AS successes,
       sum(c.judged_successes) / nullif(sum(c.judged), 0) AS success_rate,
       (sum(c.seconds_sum) / nullif(sum(c.seconds_n), 0))::double precision AS mean_job_seconds
FROM (
    SELECT experiment_id, condition, replicate, agent,
           sum(outcomes)::bigint AS outcomes, sum(scoring_errors)::bigint AS scoring_errors,
           sum(judged)::bigint AS judged, sum(successes)::bigint AS successes,
           sum(judged_successes)::bigint AS judged_successes, sum(seconds_n)::bigint AS seconds_n,
           sum(seconds_sum) AS seconds_sum
    FROM agg_cells
    GROUP BY experiment_id, condition, replicate, agent
    UNION ALL
    SELECT experiment_id, condition, replicate, agent,
           sum(outcomes)::bigint, sum(scoring_errors)::bigint, sum(judged)::bigint,
           sum(successes)::bigint, sum(judged_successes)::bigint, sum(seconds_n)::bigint,
           sum(seconds_sum)
    FROM (
        SELECT j.experiment_id, j.condition, j.replicate, coalesce(o.agent_id, -1) AS agent,
               (o.id IS NOT NULL)::int AS outcomes,
               coalesce(o.score_status = 'error', false)::int AS scoring_errors,
               (o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false))::int AS judged,
               coalesce(o.success, false)::int AS successes,
               (o.id IS NOT NULL AND NOT coalesce(o.score_status = 'error', false)
                AND coalesce(o.success, false))::int AS judged_successes,
               (o.job_seconds IS NOT NULL)::int AS seconds_n,
               coalesce(o.job_seconds::numeric, 0) AS seconds_sum
        FROM outcomes o JOIN jobs j ON j.id = o.job_id
        WHERE NOT o.folded AND j.sample = 0
    ) u
    GROUP BY experiment_id, condition, replicate, agent
) c
JOIN experiments e ON e.id = c.experiment_id
WHERE c.outcomes <> 0
GROUP BY e.name, c.condition, c.replicate, c.agent;
