-- swarmq_agg_full(n): the bitmask with the n lowest bits set: a pair judged in every one of n
-- conditions (at most 64).

CREATE OR REPLACE FUNCTION swarmq_agg_full(n integer)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT CASE WHEN n >= 64 THEN -1::bigint ELSE ~((-1)::bigint << n) END
$fn$;
