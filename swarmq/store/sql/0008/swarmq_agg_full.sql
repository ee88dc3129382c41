-- swarmq_agg_full, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_full(n integer) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL
    SAFE AS $$
               SELECT CASE WHEN n >= 64 THEN -1::bigint ELSE ~((-1)::bigint << n) END
           $$;
