-- v_outcomes: one flat row per job with its outcome, for psql users. With generation.samples, one
-- row per sample: `sample` (added last, as a view can only grow at its end) says which; the
-- results count sample 0.

CREATE OR REPLACE VIEW v_outcomes AS
SELECT e.name AS experiment, j.id AS job_id, j.condition, j.replicate, j.instance_id, j.position,
       j.seq, j.status, j.attempts, j.error AS job_error, i.task_type, i.category, i.repo,
       o.agent_id, o.state_version, o.staleness, o.update_applied, o.success, o.success_rule,
       o.score_status, o.resolved, o.finish_reason, o.prompt_tokens, o.completion_tokens,
       o.prompt_seconds, o.generation_seconds, o.tokens_per_second, o.job_seconds,
       o.scoring_seconds,
       o.worker, o.gpu_index, o.model_name, o.error, o.created_at AS finished_at, j.sample
FROM jobs j
JOIN experiments e ON e.id = j.experiment_id
JOIN issues i ON i.id = j.issue_id
LEFT JOIN outcomes o ON o.job_id = j.id;
