-- Restore a stream's state rebuilt from Postgres, only if it is still missing (two workers may race).
-- KEYS[1]=meta KEYS[2]=hist KEYS[3]=applied KEYS[4..]=buffer of agent 0..n-1
-- ARGV[1]=JSON {"version": n, "hist": {field: count}, "applied": [[job id, version], ...],
-- "buffers": [[example JSON]]}
-- Returns 1 when restored, 0 when another process restored it first.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local s = cjson.decode(ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
for field, count in pairs(s.hist) do
  redis.call('HSET', KEYS[2], field, count)
end
for _, pair in ipairs(s.applied) do
  -- The version the replay gave the job; its staleness is not known here (empty).
  redis.call('HSET', KEYS[3], pair[1], pair[2] .. ':')
end
for i = 4, #KEYS do
  redis.call('DEL', KEYS[i])
  for _, example in ipairs(s.buffers[i - 3] or {}) do
    redis.call('RPUSH', KEYS[i], example)
  end
end
redis.call('HSET', KEYS[1], 'version', s.version, 'agents', #KEYS - 3)
return 1
