-- swarmq_agg_outcomes_written and its triggers, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_outcomes_written() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        PERFORM swarmq_agg_outcomes(ARRAY[OLD], ARRAY[NEW]);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM swarmq_agg_outcomes('{}', ARRAY(SELECT ROW(o.*)::outcomes FROM new_outcomes o));
    ELSE
        PERFORM swarmq_agg_outcomes(ARRAY(SELECT ROW(o.*)::outcomes FROM old_outcomes o), '{}');
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS agg_outcomes_inserted ON outcomes;
CREATE TRIGGER agg_outcomes_inserted AFTER INSERT ON outcomes REFERENCING NEW TABLE AS new_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_outcomes_written();

DROP TRIGGER IF EXISTS agg_outcomes_deleted ON outcomes;
CREATE TRIGGER agg_outcomes_deleted AFTER DELETE ON outcomes REFERENCING OLD TABLE AS old_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_outcomes_written();

DROP TRIGGER IF EXISTS agg_outcomes_updated ON outcomes;
CREATE TRIGGER agg_outcomes_updated AFTER UPDATE OF job_id, agent_id, success, score_status,
    resolved, job_seconds, completion_tokens, generation_seconds, finish_reason, error ON outcomes
    FOR EACH ROW EXECUTE FUNCTION swarmq_agg_outcomes_written();
