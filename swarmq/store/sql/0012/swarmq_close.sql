-- swarmq_close(job, owner, new_status, reason): close a running job that owner holds, the
-- lease-holder rule (a worker that lost its lease never overwrites another's work); true when it
-- did. The outcome INSERT selects from it, so close and outcome are one statement; the close is its
-- own statement here, so the aggregate triggers see the job's end before its outcome.

CREATE OR REPLACE FUNCTION swarmq_close(job bigint, owner text, new_status text, reason text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $fn$
BEGIN
    UPDATE jobs
    SET status = new_status, error = reason, finished_at = now(), lease_expires_at = NULL
    WHERE id = job AND status = 'running' AND lease_owner = owner;
    RETURN FOUND;
END
$fn$;
