-- Read a stream's state and reserve it for one job, in one atomic step.
-- KEYS[1]=meta KEYS[2]=hist KEYS[3]=inflight KEYS[4..]=buffer of agent 0..n-1
-- ARGV[1]=job id
-- Returns false when the stream has no state (the caller rebuilds it from Postgres), else
-- {version, {hist field, count, ...}, buffer 0, buffer 1, ...}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
redis.call('HSET', KEYS[3], ARGV[1], version)
local out = {version, redis.call('HGETALL', KEYS[2])}
for i = 4, #KEYS do
  out[#out + 1] = redis.call('LRANGE', KEYS[i], 0, -1)
end
return out
