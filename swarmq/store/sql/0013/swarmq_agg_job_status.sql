-- swarmq_agg_job_status: a job's status change moves its counters (done, failed) within its cell:
-- its counted outcome's agent's, or -1. Only changes into or out of a finished status count, and
-- only of sample 0 (swarmq_agg_outcomes says why).

CREATE OR REPLACE FUNCTION swarmq_agg_job_status()
 RETURNS trigger
 LANGUAGE plpgsql
AS $fn$
BEGIN
    INSERT INTO agg_cells AS t (
        experiment_id, condition, replicate, task_type, agent, jobs, done, failed
    )
    SELECT experiment_id, condition, replicate, task_type, agent, sum(jobs), sum(done), sum(failed)
    FROM (
        SELECT j.experiment_id, j.condition, j.replicate, i.task_type,
               coalesce(o.agent_id, -1) AS agent,
               j.sign * 1 AS jobs,
               j.sign * (j.status = 'done')::int AS done,
               j.sign * (j.status = 'failed')::int AS failed
        FROM (
            VALUES (-1, OLD.id, OLD.experiment_id, OLD.condition, OLD.replicate, OLD.status,
                    OLD.issue_id),
                   (1, NEW.id, NEW.experiment_id, NEW.condition, NEW.replicate, NEW.status,
                    NEW.issue_id)
        ) AS j(sign, id, experiment_id, condition, replicate, status, issue_id)
        JOIN issues i ON i.id = j.issue_id
        LEFT JOIN outcomes o ON o.job_id = j.id AND o.folded
    ) d
    GROUP BY experiment_id, condition, replicate, task_type, agent
    HAVING sum(jobs) <> 0 OR sum(done) <> 0 OR sum(failed) <> 0
    ORDER BY experiment_id, condition, replicate, task_type, agent
    ON CONFLICT (experiment_id, condition, replicate, task_type, agent) DO UPDATE SET
        jobs = t.jobs + excluded.jobs,
        done = t.done + excluded.done,
        failed = t.failed + excluded.failed;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS agg_job_status ON jobs;
CREATE TRIGGER agg_job_status AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.sample = 0 AND OLD.status IS DISTINCT FROM NEW.status
          AND (OLD.status IN ('done', 'failed') OR NEW.status IN ('done', 'failed')))
    EXECUTE FUNCTION swarmq_agg_job_status();
