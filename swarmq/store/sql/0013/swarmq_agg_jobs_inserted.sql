-- swarmq_agg_jobs_inserted: new jobs count in the results aggregates' cell -1 (no outcome yet);
-- only sample 0 of each (condition, replicate, issue) counts, as in swarmq_agg_outcomes.

CREATE OR REPLACE FUNCTION swarmq_agg_jobs_inserted()
 RETURNS trigger
 LANGUAGE plpgsql
AS $fn$
BEGIN
    INSERT INTO agg_cells AS t (
        experiment_id, condition, replicate, task_type, agent, jobs, done, failed
    )
    SELECT experiment_id, condition, replicate, task_type, -1, sum(jobs), sum(done), sum(failed)
    FROM (
        SELECT j.experiment_id, j.condition, j.replicate, i.task_type,
               1 AS jobs,
               (j.status = 'done')::int AS done,
               (j.status = 'failed')::int AS failed
        FROM new_jobs j JOIN issues i ON i.id = j.issue_id
        WHERE j.sample = 0
    ) d
    GROUP BY experiment_id, condition, replicate, task_type
    ORDER BY experiment_id, condition, replicate, task_type
    ON CONFLICT (experiment_id, condition, replicate, task_type, agent) DO UPDATE SET
        jobs = t.jobs + excluded.jobs,
        done = t.done + excluded.done,
        failed = t.failed + excluded.failed;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS agg_jobs_inserted ON jobs;
CREATE TRIGGER agg_jobs_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_jobs_inserted();
