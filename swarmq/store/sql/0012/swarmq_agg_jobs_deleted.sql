-- swarmq_agg_jobs_deleted: jobs leave only with their experiment (its aggregates go by cascade);
-- a DELETE of single jobs is refused, as the aggregates would still count them.

CREATE OR REPLACE FUNCTION swarmq_agg_jobs_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM old_jobs j JOIN experiments e ON e.id = j.experiment_id) THEN
        RAISE EXCEPTION
            'jobs are deleted with their experiment (the results aggregates count them)';
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS agg_jobs_deleted ON jobs;
CREATE TRIGGER agg_jobs_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_jobs_deleted();
