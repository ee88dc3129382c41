-- v_agent_summary, frozen as revision 0008 wrote it.

CREATE OR REPLACE VIEW v_agent_summary AS
SELECT e.name AS experiment, c.condition, c.replicate, nullif(c.agent, -1) AS agent_id,
       sum(c.outcomes)::bigint AS outcomes,
       sum(c.scoring_errors)::bigint AS scoring_errors,
       sum(c.judged)::bigint AS judged,
       sum(c.successes)::bigint AS successes,
       sum(c.judged_successes) / nullif(sum(c.judged), 0) AS success_rate,
       (sum(c.seconds_sum) / nullif(sum(c.seconds_n), 0))::double precision AS mean_job_seconds
FROM agg_cells c JOIN experiments e ON e.id = c.experiment_id
WHERE c.outcomes <> 0
GROUP BY e.name, c.condition, c.replicate, c.agent;
