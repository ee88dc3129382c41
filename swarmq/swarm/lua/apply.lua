-- Apply one job's update to a stream exactly once (idempotent per job id), in one atomic step.
-- KEYS[1]=meta KEYS[2]=hist KEYS[3]=applied (hash: job id -> 'version:staleness') KEYS[4]=inflight
-- KEYS[5]=buffer of the chosen agent
-- ARGV[1]=job id ARGV[2]=agent id ARGV[3]=task type ARGV[4]='1' success / '0' failure
-- ARGV[5]=example JSON ('' for none) ARGV[6]=buffer capacity ARGV[7]='0' when the scorer could not judge
-- (the update is recorded as applied, but no attempt is counted)
-- Returns {status, version, staleness}: status 1 applied, 0 already applied, -1 no state. The version is the
-- one the job's update produced, kept with its id: a duplicate returns it too, so the applied-mark Postgres
-- gets is the same whether the worker that applied it lived to write it or another finishes it later.
-- Staleness is -1 when unknown (an update a rebuild replayed).
if redis.call('TYPE', KEYS[3]).ok == 'set' then
  -- State written before versions were kept per job: rebuild it from Postgres (`restore.lua`).
  redis.call('DEL', KEYS[1])
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, 0, -1}
end
local prior = redis.call('HGET', KEYS[3], ARGV[1])
if prior then
  local v, s = string.match(prior, '^(%d+):(%d*)$')
  return {0, tonumber(v), tonumber(s) or -1}
end
local field = ARGV[2] .. ':' .. ARGV[3]
if ARGV[7] ~= '0' then
  redis.call('HINCRBY', KEYS[2], field .. ':a', 1)
end
if ARGV[7] ~= '0' and ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[2], field .. ':s', 1)
  local cap = tonumber(ARGV[6])
  if ARGV[5] ~= '' and cap > 0 then
    redis.call('RPUSH', KEYS[5], ARGV[5])
    redis.call('LTRIM', KEYS[5], -cap, -1)
  end
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
local seen = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or (version - 1))
redis.call('HDEL', KEYS[4], ARGV[1])
local staleness = math.max(0, version - 1 - seen)
redis.call('HSET', KEYS[3], ARGV[1], version .. ':' .. staleness)
return {1, version, staleness}
