-- The shared lowered rate after an upstream throttle (AIMD), as a closed form of the time since
-- the pause ended, so that no replica has to write while it recovers: +5% of the ceiling per
-- second up to 95% of it, then the ceiling itself grows 1% every 30 s. Times in microseconds.
local function effective_rate(lowered, ceiling, since, now)
  if now < since then
    return lowered
  end
  local step = 0.05 * ceiling
  local target = 0.95 * ceiling
  local rate = math.min(lowered + math.floor((now - since) / 1000000) * step, target)
  if rate >= target then
    local reached = since + math.max(0, math.ceil((target - lowered) / step)) * 1000000
    local probes = math.floor((now - reached) / 30000000)
    if probes > 0 then
      rate = target * (1.01 ^ probes)
    end
  end
  return rate
end

-- The route's lowered rate now, or nil when it is not lowered (or has recovered past `configured`).
local function lowered_rate(key, configured, now)
  local a = redis.call('HMGET', key, 'rate', 'ceiling', 'since')
  if not a[1] then
    return nil
  end
  local rate = effective_rate(tonumber(a[1]), tonumber(a[2]), tonumber(a[3]), now)
  if rate >= configured then
    return nil
  end
  return rate
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
