-- An upstream throttle seen by one replica, shared with all: pause the route for the
-- Retry-After (never shortening a longer pause) and lower its rate once per pause (AIMD).
-- KEYS: route pause, route AIMD state
-- ARGV: pause (ms), configured rate/s (0: no route quota, no lowering), decrease factor,
--       lowest rate/s
local now = now_us()
local pause_ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < pause_ms then
  redis.call('SET', KEYS[1], '1', 'PX', pause_ms)
  left = pause_ms
end
local configured = tonumber(ARGV[2])
if configured <= 0 then
  return 0
end
local a = redis.call('HMGET', KEYS[2], 'rate', 'ceiling', 'since')
local current = configured
if a[1] then
  -- Several attempts in flight may all come back throttled: lower once per pause.
  if now < tonumber(a[3]) then
    return 0
  end
  current = math.min(effective_rate(tonumber(a[1]), tonumber(a[2]), tonumber(a[3]), now), configured)
end
local lowered = math.max(current * tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('HSET', KEYS[2], 'rate', string.format('%.6f', lowered), 'ceiling',
  string.format('%.6f', current), 'since', string.format('%.0f', now + left * 1000))
-- Fully recovered within an hour in any realistic case; then the state goes.
redis.call('PEXPIRE', KEYS[2], 3600000)
return 1
