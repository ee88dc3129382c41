-- swarmq_agg_truncated and its triggers, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM swarmq_agg_rebuild(id) FROM experiments;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS agg_jobs_truncated ON jobs;
CREATE TRIGGER agg_jobs_truncated AFTER TRUNCATE ON jobs FOR EACH STATEMENT EXECUTE FUNCTION
    swarmq_agg_truncated();

DROP TRIGGER IF EXISTS agg_outcomes_truncated ON outcomes;
CREATE TRIGGER agg_outcomes_truncated AFTER TRUNCATE ON outcomes FOR EACH STATEMENT EXECUTE FUNCTION
    swarmq_agg_truncated();
