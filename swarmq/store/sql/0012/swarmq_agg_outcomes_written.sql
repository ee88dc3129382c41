-- swarmq_agg_outcomes_written: an update or delete of counted (folded) outcomes applies its change
-- to the aggregates. An outcome is inserted unfolded and counted by swarmq_agg_fold, as it is then,
-- so inserts have no trigger and changes to unfolded outcomes count nothing yet. An update of a
-- column the aggregates do not read (the applied mark) skips the trigger.

CREATE OR REPLACE FUNCTION swarmq_agg_outcomes_written()
 RETURNS trigger
 LANGUAGE plpgsql
AS $fn$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        IF OLD.folded THEN
            PERFORM swarmq_agg_outcomes(ARRAY[OLD], ARRAY[NEW]);
        END IF;
    ELSE
        PERFORM swarmq_agg_outcomes(
            ARRAY(SELECT ROW(o.*)::outcomes FROM old_outcomes o WHERE o.folded), '{}');
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS agg_outcomes_deleted ON outcomes;
CREATE TRIGGER agg_outcomes_deleted AFTER DELETE ON outcomes
    REFERENCING OLD TABLE AS old_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION swarmq_agg_outcomes_written();

DROP TRIGGER IF EXISTS agg_outcomes_updated ON outcomes;
CREATE TRIGGER agg_outcomes_updated
    AFTER UPDATE OF job_id, agent_id, success, score_status, resolved, job_seconds,
                    completion_tokens, generation_seconds, finish_reason, error
    ON outcomes
    FOR EACH ROW EXECUTE FUNCTION swarmq_agg_outcomes_written();
