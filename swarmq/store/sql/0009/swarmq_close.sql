-- swarmq_close, frozen as revision 0009 wrote it.

CREATE OR REPLACE FUNCTION swarmq_close(job bigint, owner text, new_status text, reason text)
    RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE jobs SET status = new_status, error = reason, finished_at = now(), lease_expires_at =
        NULL
    WHERE id = job AND status = 'running' AND lease_owner = owner;
    RETURN FOUND;
END
$fn$;
