-- v_condition_summary, frozen as revision 0008 wrote it.

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
FROM agg_cells c JOIN experiments e ON e.id = c.experiment_id
GROUP BY e.name, c.condition;
