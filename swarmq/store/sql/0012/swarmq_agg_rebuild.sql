-- swarmq_agg_rebuild(e): recount experiment e's results aggregates from its rows (`swarmq db
-- rebuild-aggregates`, and the truncate triggers). Its jobs count in cell -1 as when they were
-- inserted; then every outcome is applied as a fold applies it (swarmq_agg_outcomes), a batch at a
-- time: a rebuild counts by the same definitions as the maintained tables.

CREATE OR REPLACE FUNCTION swarmq_agg_rebuild(e integer)
 RETURNS void
 LANGUAGE plpgsql
AS $fn$
DECLARE
    batch outcomes[];
    last bigint := 0;
BEGIN
    -- No write to jobs or outcomes may interleave with the recount.
    LOCK TABLE jobs, outcomes IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM agg_cells WHERE experiment_id = e;
    DELETE FROM agg_seconds WHERE experiment_id = e;
    DELETE FROM agg_pairs WHERE experiment_id = e;
    DELETE FROM agg_issues WHERE experiment_id = e;
    DELETE FROM agg_issue_pairs WHERE experiment_id = e;
    UPDATE outcomes o SET folded = true
    FROM jobs j WHERE j.id = o.job_id AND j.experiment_id = e AND NOT o.folded;

    INSERT INTO agg_cells (
        experiment_id, condition, replicate, task_type, agent, jobs, done, failed
    )
    SELECT experiment_id, condition, replicate, task_type, -1, sum(jobs), sum(done), sum(failed)
    FROM (
        SELECT j.experiment_id, j.condition, j.replicate, i.task_type,
               1 AS jobs,
               (j.status = 'done')::int AS done,
               (j.status = 'failed')::int AS failed
        FROM jobs j JOIN issues i ON i.id = j.issue_id
        WHERE j.experiment_id = e
    ) d
    GROUP BY experiment_id, condition, replicate, task_type
    ORDER BY experiment_id, condition, replicate, task_type;

    LOOP
        SELECT coalesce(array_agg(ROW(x.*)::outcomes ORDER BY x.id), '{}') INTO batch FROM (
            SELECT o.* FROM outcomes o JOIN jobs j ON j.id = o.job_id
            WHERE j.experiment_id = e AND o.id > last
            ORDER BY o.id LIMIT 5000) x;
        EXIT WHEN cardinality(batch) = 0;
        PERFORM swarmq_agg_outcomes('{}', batch);
        last := (batch[cardinality(batch)]).id;
    END LOOP;
END
$fn$;
