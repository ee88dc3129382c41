-- swarmq_agg_conditions, frozen as revision 0008 wrote it.

CREATE OR REPLACE FUNCTION swarmq_agg_conditions(e integer) RETURNS text[] LANGUAGE sql STABLE AS $$
               SELECT array_agg(k ORDER BY k COLLATE "C")
               FROM experiments x, jsonb_object_keys(x.config->'conditions') k WHERE x.id = e
           $$;
