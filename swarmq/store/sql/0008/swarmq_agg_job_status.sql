-- swarmq_agg_job_status and its triggers, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_job_status() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO agg_cells AS t (experiment_id, condition, replicate, task_type, agent, jobs, done,
        failed, outcomes, scoring_errors, judged, successes, judged_successes, resolved, imported,
        seconds_n, seconds_sum, tokens_sum, generation_n, generation_sum, length_n, finish_n,
        errors_n, matched, matched_successes) SELECT experiment_id, condition, replicate, task_type,
        agent, sum(jobs) AS jobs, sum(done) AS done, sum(failed) AS failed, sum(outcomes) AS
        outcomes, sum(scoring_errors) AS scoring_errors, sum(judged) AS judged, sum(successes) AS
        successes, sum(judged_successes) AS judged_successes, sum(resolved) AS resolved,
        sum(imported) AS imported, sum(seconds_n) AS seconds_n, sum(seconds_sum) AS seconds_sum,
        sum(tokens_sum) AS tokens_sum, sum(generation_n) AS generation_n, sum(generation_sum) AS
        generation_sum, sum(length_n) AS length_n, sum(finish_n) AS finish_n, sum(errors_n) AS
        errors_n, sum(matched) AS matched, sum(matched_successes) AS matched_successes FROM (SELECT
        j.experiment_id, j.condition, j.replicate, i.task_type AS task_type, coalesce(o.agent_id,
        -1) AS agent, (j.sign) * (1)::bigint AS jobs, (j.sign) * ((j.status = 'done')::int)::bigint
        AS done, (j.sign) * ((j.status = 'failed')::int)::bigint AS failed, (j.sign) * (0)::bigint
        AS outcomes, (j.sign) * (0)::bigint AS scoring_errors, (j.sign) * (0)::bigint AS judged,
        (j.sign) * (0)::bigint AS successes, (j.sign) * (0)::bigint AS judged_successes, (j.sign) *
        (0)::bigint AS resolved, (j.sign) * (0)::bigint AS imported, (j.sign) * (0)::bigint AS
        seconds_n, (j.sign) * (0)::numeric AS seconds_sum, (j.sign) * (0)::bigint AS tokens_sum,
        (j.sign) * (0)::bigint AS generation_n, (j.sign) * (0)::numeric AS generation_sum, (j.sign)
        * (0)::bigint AS length_n, (j.sign) * (0)::bigint AS finish_n, (j.sign) * (0)::bigint AS
        errors_n, (j.sign) * (0)::bigint AS matched, (j.sign) * (0)::bigint AS matched_successes
        FROM (VALUES (-1, OLD.id, OLD.experiment_id, OLD.condition, OLD.replicate, OLD.status,
        OLD.issue_id), (1, NEW.id, NEW.experiment_id, NEW.condition, NEW.replicate, NEW.status,
        NEW.issue_id)) AS j(sign, id, experiment_id, condition, replicate, status, issue_id) JOIN
        issues i ON i.id = j.issue_id LEFT JOIN outcomes o ON o.job_id = j.id) d GROUP BY
        experiment_id, condition, replicate, task_type, agent HAVING sum(jobs) <> 0 OR sum(done) <>
        0 OR sum(failed) <> 0 OR sum(outcomes) <> 0 OR sum(scoring_errors) <> 0 OR sum(judged) <> 0
        OR sum(successes) <> 0 OR sum(judged_successes) <> 0 OR sum(resolved) <> 0 OR sum(imported)
        <> 0 OR sum(seconds_n) <> 0 OR sum(seconds_sum) <> 0 OR sum(tokens_sum) <> 0 OR
        sum(generation_n) <> 0 OR sum(generation_sum) <> 0 OR sum(length_n) <> 0 OR sum(finish_n) <>
        0 OR sum(errors_n) <> 0 OR sum(matched) <> 0 OR sum(matched_successes) <> 0 ORDER BY
        experiment_id, condition, replicate, task_type, agent ON CONFLICT (experiment_id, condition,
        replicate, task_type, agent) DO UPDATE SET jobs = t.jobs + excluded.jobs, done = t.done +
        excluded.done, failed = t.failed + excluded.failed, outcomes = t.outcomes +
        excluded.outcomes, scoring_errors = t.scoring_errors + excluded.scoring_errors, judged =
        t.judged + excluded.judged, successes = t.successes + excluded.successes, judged_successes =
        t.judged_successes + excluded.judged_successes, resolved = t.resolved + excluded.resolved,
        imported = t.imported + excluded.imported, seconds_n = t.seconds_n + excluded.seconds_n,
        seconds_sum = t.seconds_sum + excluded.seconds_sum, tokens_sum = t.tokens_sum +
        excluded.tokens_sum, generation_n = t.generation_n + excluded.generation_n, generation_sum =
        t.generation_sum + excluded.generation_sum, length_n = t.length_n + excluded.length_n,
        finish_n = t.finish_n + excluded.finish_n, errors_n = t.errors_n + excluded.errors_n,
        matched = t.matched + excluded.matched, matched_successes = t.matched_successes +
        excluded.matched_successes;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS agg_job_status ON jobs;
CREATE TRIGGER agg_job_status AFTER UPDATE OF status ON jobs FOR EACH ROW WHEN (OLD.status IS
    DISTINCT FROM NEW.status AND (OLD.status IN ('done', 'failed') OR NEW.status IN ('done',
    'failed'))) EXECUTE FUNCTION swarmq_agg_job_status();
