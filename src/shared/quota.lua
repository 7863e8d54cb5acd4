-- One attempt's permit, reserved across every replica: GCRA on Redis TIME, every bucket the
-- attempt needs checked before any is consumed.
-- KEYS: route TAT, route pause, route AIMD state, [global TAT]
-- ARGV: route rate/s (0: no route quota), route burst, global rate/s (0: none), global burst,
--       the longest wait the caller accepts (us)
-- Answers {code, wait_us, route_rate_milli}: code 0 = granted after wait_us (consumed);
-- 1 = refused by the route quota, 2 = by an upstream throttle (pause or lowered rate),
-- 3 = by the global quota (wait_us = what it would have taken; nothing consumed).
local now = now_us()
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local grate, gburst = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_wait = tonumber(ARGV[5])

-- Nothing goes before a shared pause ends.
local go, code = now, 1
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then
  go, code = now + pause * 1000, 2
end

local lowered = false
if rate > 0 then
  local r = lowered_rate(KEYS[3], rate, now)
  if r then
    rate, burst, lowered = r, 1, true
  end
end

-- Each bucket: {key, emission interval, burst, stored TAT}; the earliest conforming time of
-- the attempt is the latest over all buckets.
local buckets = {}
local function check(key, r, b, reason)
  local interval = 1000000 / r
  local tat = tonumber(redis.call('GET', key) or '0')
  local earliest = tat - (b - 1) * interval
  if earliest > go then
    go, code = earliest, reason
  end
  buckets[#buckets + 1] = {key, interval, tat}
end
if rate > 0 then
  check(KEYS[1], rate, burst, lowered and 2 or 1)
end
if grate > 0 and KEYS[4] then
  check(KEYS[4], grate, gburst, 3)
end

local wait = math.ceil(go - now)
local milli = math.floor(rate * 1000)
if wait > max_wait then
  return {code, wait, milli}
end
for _, bucket in ipairs(buckets) do
  local tat = math.max(bucket[3], go) + bucket[2]
  -- Kept until the bucket would be full again anyway, then it may go.
  redis.call('SET', bucket[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return {0, wait, milli}
