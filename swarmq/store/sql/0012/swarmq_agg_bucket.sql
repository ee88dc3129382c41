-- swarmq_agg_bucket(seconds): the job_seconds histogram's bucket: b holds [2^(b/8), 2^((b+1)/8))
-- seconds (`store.histograms.BUCKETS_PER_OCTAVE`); times under 2^-20 s, zero included, go to -161
-- (`store.histograms.ZERO_BUCKET`).

CREATE OR REPLACE FUNCTION swarmq_agg_bucket(seconds double precision)
 RETURNS smallint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT CASE WHEN seconds IS NULL THEN NULL
                WHEN seconds < 2 ^ -20 THEN -161
                ELSE least(160, floor(8 * ln(seconds) / ln(2)))::smallint END
$fn$;
