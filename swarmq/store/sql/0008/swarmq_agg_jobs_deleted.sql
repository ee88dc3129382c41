-- swarmq_agg_jobs_deleted and its triggers, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM old_jobs j JOIN experiments e ON e.id = j.experiment_id) THEN
        RAISE EXCEPTION
            'jobs are deleted with their experiment (the results aggregates count them)';
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS agg_jobs_deleted ON jobs;
CREATE TRIGGER agg_jobs_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_jobs FOR EACH
    STATEMENT EXECUTE FUNCTION swarmq_agg_jobs_deleted();
