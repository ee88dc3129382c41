-- swarmq_agg_fold, frozen as revision 0010 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_fold(e integer, batch integer, wait boolean) RETURNS integer
    LANGUAGE plpgsql AS $fn$
DECLARE
    picked outcomes[];
BEGIN
    IF wait THEN
        SELECT coalesce(array_agg(ROW(x.*)::outcomes ORDER BY x.id), '{}') INTO picked FROM (
            SELECT o.* FROM outcomes o JOIN jobs j ON j.id = o.job_id
            WHERE NOT o.folded AND (e IS NULL OR j.experiment_id = e)
            ORDER BY o.id LIMIT batch FOR UPDATE OF o) x;
    ELSE
        SELECT coalesce(array_agg(ROW(x.*)::outcomes ORDER BY x.id), '{}') INTO picked FROM (
            SELECT o.* FROM outcomes o JOIN jobs j ON j.id = o.job_id
            WHERE NOT o.folded AND o.update_applied AND (e IS NULL OR j.experiment_id = e)
            ORDER BY o.id LIMIT batch FOR UPDATE OF o SKIP LOCKED) x;
    END IF;
    IF cardinality(picked) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM jobs WHERE id IN (SELECT job_id FROM unnest(picked)) ORDER BY id FOR SHARE;
    UPDATE outcomes SET folded = true WHERE id IN (SELECT id FROM unnest(picked));
    PERFORM swarmq_agg_outcomes('{}', picked);
    RETURN cardinality(picked);
END
$fn$;
