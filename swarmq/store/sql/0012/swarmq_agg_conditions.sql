-- swarmq_agg_conditions(e): experiment e's condition names in byte order: bit k - 1 of a pair's
-- masks is the k-th of them.

CREATE OR REPLACE FUNCTION swarmq_agg_conditions(e integer)
 RETURNS text[]
 LANGUAGE sql
 STABLE
AS $fn$
    SELECT array_agg(k ORDER BY k COLLATE "C")
    FROM experiments x, jsonb_object_keys(x.config->'conditions') k WHERE x.id = e
$fn$;
