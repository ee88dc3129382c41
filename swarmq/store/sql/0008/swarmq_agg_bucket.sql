-- swarmq_agg_bucket, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_bucket(seconds double precision) RETURNS smallint
           LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
               SELECT CASE WHEN seconds IS NULL THEN NULL
                           WHEN seconds < 2 ^ -20 THEN -161
                           ELSE least(160, floor(8 * ln(seconds) / ln(2)))::smallint END
           $$;
