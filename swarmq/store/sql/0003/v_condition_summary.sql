-- v_condition_summary, frozen as revision 0003 wrote it.

CREATE OR REPLACE VIEW v_condition_summary AS
SELECT experiment, condition,
       count(*) AS jobs,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(success) AS outcomes,
       count(*) FILTER (WHERE score_status = 'error') AS scoring_errors,
       count(*) FILTER (WHERE success) AS successes,
       avg(success::int) FILTER (WHERE score_status IS DISTINCT FROM 'error') AS success_rate,
       count(*) FILTER (WHERE resolved) AS resolved,
       count(resolved) AS imported,
       avg(job_seconds) AS mean_job_seconds,
       sum(completion_tokens) / nullif(sum(generation_seconds), 0) AS generation_tokens_per_second,
       avg((finish_reason = 'length')::int) AS share_max_tokens
FROM v_outcomes
GROUP BY experiment, condition;
