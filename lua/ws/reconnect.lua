--- Reconnect policies: when (and whether) a client connects again.
--
-- A policy is any function `(event, attempt, ctx) -> seconds | nil`:
-- a number is the delay before the next attempt, nil stops reconnecting.
--
-- * `event` is the close event of the connection that just ended
--   (@{closing.md.The_close_event|its fields}): `code`, `name`, `initiator` ("local", "remote" or
--   "transport"), `error` ("refused", "dns", "timeout", "tls", "http",
--   "heartbeat_timeout", ...), `http_status` and `clean`.
-- * `attempt` counts the attempts of this outage: 1 for the first retry
--   after a working connection ended (or the first connect failed).
-- * `ctx` carries what the policy may read and change:
--   `elapsed` (seconds since the outage began), `last_delay` (the delay
--   chosen for the previous attempt, nil on the first), `retry_after`
--   (seconds, from a 429/503 `Retry-After`, or nil), `url` and `headers`
--   (used for the next attempt: a policy may rewrite them, e.g. to refresh
--   credentials), `class` (`classify(event)`, filled in by the caller) and
--   `random` (optional: a function returning a number in [0, 1)).
--
-- Policies keep no state of their own (everything is in `ctx`), so one
-- policy value may serve any number of clients. Every delay draws fresh
-- randomness from `ctx.random`, else from `reconnect.random`
-- (`math.random` unless replaced; this module never seeds it).
--
-- ## Default classification
--
-- `classify(event)` applies the first rule that matches, top to bottom:
--
-- | Close                                | Class     | `default` does                 |
-- |--------------------------------------|-----------|--------------------------------|
-- | we closed it (local, no `error`)     | stop      | stop                           |
-- | HTTP 401, 403, 407 (1)               | auth      | stop                           |
-- | HTTP 429, 503                        | overload  | `Retry-After`, or long backoff |
-- | other HTTP 4xx                       | fatal     | stop                           |
-- | HTTP 5xx                             | retry     | exponential backoff            |
-- | other HTTP status but 101            | fatal     | stop                           |
-- | `error == "tls"`, 1015               | fatal     | stop                           |
-- | `error == "extension"`               | fatal     | stop                           |
-- | `error == "dns"`                     | retry     | exponential backoff            |
-- | 1000 from the peer                   | stop      | stop                           |
-- | 1001, 1005, 1006, 1011, 1014         | retry     | exponential backoff            |
-- | 1012 service restart                 | restart   | random 5-30 s                  |
-- | 1013 try again later                 | overload  | long backoff                   |
-- | 1002, 1003, 1007, 1008, 1009, 1010   | fatal     | stop                           |
-- | invalid codes (1004, 1016-2999, ...) | fatal     | stop                           |
-- | application codes 3000-4999          | retry (2) | by class                       |
--
-- A close without a code (a transport failure: refused, timeout, a
-- dead heartbeat) counts as 1006. `fatal` means another attempt would fail
-- the same way; `auth` stops unless a policy refreshes credentials (it may
-- rewrite `ctx.headers`). (1) 407 comes from an HTTP proxy (`error ==
-- "proxy"`), whose other statuses follow the same rows; a proxy that
-- cannot be reached counts as 1006. (2) An application code has the class
-- given to `codes.define(code, name, class)`, retry by default; "normal"
-- means stop.
--
-- `default` is `by_class` over:
-- `retry` = `exponential{initial = 0.5, max = 30, jitter = "full"}`,
-- `restart` = uniform 5-30 s,
-- `overload` = `Retry-After` plus up to 10% (1-30 s) of jitter when the
-- server sent one, else `exponential{initial = 5, max = 300, jitter = "full"}`,
-- `fatal`, `auth`, `stop` = never. Whatever the class, a delay shorter
-- than `ctx.retry_after` is raised to it: a server's `Retry-After` is
-- never undercut.
-- @module ws.reconnect
local codes = require "ws.codes"
local options = require "ws.options"

local type, tostring, tonumber, pcall, error, pairs = type, tostring,
  tonumber, pcall, error, pairs
local getmetatable = getmetatable
local math_floor, math_ceil, math_min, math_max, math_log, math_huge =
  math.floor, math.ceil, math.min, math.max, math.log, math.huge
local math_random = math.random
local os_time = os.time
local string_format = string.format

local reconnect = {}

--- The random source built-in policies use when `ctx.random` is absent:
-- a function returning a number in [0, 1). Replace it (or pass
-- `ctx.random`) for reproducible delays. Defaults to `math.random`.
reconnect.random = math_random

local CLASSES = {
  stop = true, retry = true, restart = true, overload = true, fatal = true,
  auth = true,
}

local EMPTY = {}

local function is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and type(mt.__call) == "function"
end

local function is_finite(n)
  return type(n) == "number" and n == n and n > -math_huge and n < math_huge
end

local function describe(v)
  if type(v) == "number" then
    if v ~= v then return "NaN" end
    if v == math_huge then return "inf" end
    if v == -math_huge then return "-inf" end
    return tostring(v)
  end
  if type(v) == "string" then return string_format("%q", v) end
  return tostring(v)
end

local function draw(ctx)
  local random = ctx.random or reconnect.random
  return random()
end

local function attempt_number(attempt)
  if type(attempt) ~= "number" or attempt ~= attempt or attempt < 1 then
    return 1
  end
  return attempt
end

-- The exponent past which `initial * factor ^ n` is at least `max`, so
-- larger attempts give the same base and never overflow.
local function exponent_clamp(initial, max, factor)
  if factor <= 1 or max <= initial then return 0 end
  return math_ceil(math_log(max / initial) / math_log(factor)) + 1
end

local function backoff_base(initial, max, factor, clamp, attempt)
  local n = math_min(attempt_number(attempt) - 1, clamp)
  return math_min(max, initial * factor ^ n)
end

-- ------------------------------------------------------------------------
-- Classification
-- ------------------------------------------------------------------------

--- The reconnect class of a close event, by the table in the module
-- description.
-- @tparam table event a close event (`code`, `initiator`, `error`,
--   `http_status`)
-- @treturn string "stop", "retry", "restart", "overload", "fatal" or "auth"
function reconnect.classify(event)
  if type(event) ~= "table" then
    error("bad argument #1 to 'classify' (close event table expected, got "
      .. type(event) .. ")", 2)
  end
  local err, code = event.error, event.code
  if event.initiator == "local" and err == nil then return "stop" end
  local status = event.http_status
  if status ~= nil and status ~= 101 then
    if status == 401 or status == 403 or status == 407 then
      return "auth"
    end
    if status == 429 or status == 503 then return "overload" end
    if type(status) == "number" then
      if status >= 400 and status < 500 then return "fatal" end
      if status >= 500 and status < 600 then return "retry" end
    end
    return "fatal"
  end
  if err == "tls" or code == 1015 then return "fatal" end
  -- the server answered with compression parameters we cannot accept
  if err == "extension" then return "fatal" end
  if err == "dns" then return "retry" end
  if code == nil then code = 1006 end
  if code == 1000 and event.initiator == "remote" then return "stop" end
  local class = codes.class(code)
  if class == "normal" then return "stop" end
  if not CLASSES[class] then return "fatal" end
  return class
end

-- ------------------------------------------------------------------------
-- Calling a policy
-- ------------------------------------------------------------------------

--- Ask a policy for the next delay, safely: this is what a reconnecting
-- client calls. Fills `ctx.class` with `classify(event)` when it is nil.
-- A policy that raises, or returns anything but nil or a finite number
-- >= 0, means stop; the second result then says why.
-- @tparam function policy a policy (or a callable table)
-- @tparam table event the close event
-- @tparam integer attempt 1 for the first retry of this outage
-- @tparam[opt] table ctx the policy context (see the module description)
-- @treturn[1] number the delay in seconds
-- @treturn[2] nil stop: the policy returned nil
-- @treturn[3] nil stop
-- @treturn[3] string "policy raised: MESSAGE" or "policy returned WHAT"
function reconnect.call(policy, event, attempt, ctx)
  if not is_callable(policy) then
    error("bad argument #1 to 'call' (policy function expected, got "
      .. type(policy) .. ")", 2)
  end
  ctx = ctx or {}
  if ctx.class == nil and type(event) == "table" then
    ctx.class = reconnect.classify(event)
  end
  local ok, delay = pcall(policy, event, attempt, ctx)
  if not ok then return nil, "policy raised: " .. tostring(delay) end
  if delay == nil then return nil end
  if not is_finite(delay) or delay < 0 then
    if type(delay) == "number" then
      return nil, "policy returned " .. describe(delay)
    end
    return nil, "policy returned a " .. type(delay) .. " ("
      .. describe(delay) .. ")"
  end
  return delay
end

-- ------------------------------------------------------------------------
-- Built-in policies
-- ------------------------------------------------------------------------

-- Classes another attempt would fail the same way: the built-in delay
-- policies stop on them unless made with `retry_fatal = true`.
local FATAL = { fatal = true, auth = true }

-- The ctx of a call that by_class routed by its class: a policy given
-- for the fatal or auth class was chosen for it, so it does not stop.
local routed = setmetatable({}, { __mode = "k" })

-- Wrap a delay policy so that it stops (nil) on a fatal or auth close.
local function respecting_fatal(policy, retry_fatal)
  if retry_fatal then return policy end
  return function(event, attempt, ctx)
    if ctx and routed[ctx] then return policy(event, attempt, ctx) end
    local class = ctx and ctx.class
    if class == nil and type(event) == "table" then
      class = reconnect.classify(event)
    end
    if FATAL[class] then return nil end
    return policy(event, attempt, ctx)
  end
end

--- A policy that never reconnects.
-- @treturn function policy
function reconnect.never()
  return function() return nil end
end

--- A policy that always waits the same time; it stops on a fatal or
-- auth close (see the classification) unless `opts.retry_fatal` is true.
-- @tparam number d seconds, finite and >= 0
-- @tparam[opt] table opts `retry_fatal` (false)
-- @treturn function policy
function reconnect.fixed(d, opts)
  if not is_finite(d) or d < 0 then
    error("bad argument #1 to 'fixed' (delay: finite number >= 0 expected, "
      .. "got " .. describe(d) .. ")", 2)
  end
  opts = options.check(options.fixed, opts, 2)
  return respecting_fatal(function() return d end, opts.retry_fatal == true)
end

--- Exponential backoff with jitter.
--
-- The base delay for attempt `n` is `min(max, initial * factor^(n-1))`
-- (the exponent stops growing once the base reaches `max`, so any attempt
-- number gives a finite delay). `r` is a fresh random number in [0, 1):
--
-- * `"none"`: the base;
-- * `"full"`: `r * base`, in [0, base) (spreads a crowd of clients best);
-- * `"equal"`: `base/2 + r * base/2`, in [base/2, base);
-- * `"decorrelated"` (AWS): `min(max, initial + r * (3 * prev - initial))`
--   with `prev = max(ctx.last_delay or initial, initial)`; ignores the
--   attempt number and grows from the previous delay instead.
--
-- It stops on a fatal or auth close (see the classification) unless
-- `retry_fatal` is true.
-- @tparam[opt] table opts `initial` (seconds > 0, default 0.5),
--   `max` (>= initial, default 30), `factor` (>= 1, default 2),
--   `jitter` ("full" (default), "equal", "decorrelated" or "none"),
--   `retry_fatal` (false)
-- @treturn function policy
function reconnect.exponential(opts)
  opts = options.check(options.exponential, opts, 2)
  local initial = opts.initial or 0.5
  local max = opts.max or math_max(30, initial)
  local factor = opts.factor or 2
  local jitter = opts.jitter or "full"
  local retry_fatal = opts.retry_fatal == true
  local clamp = exponent_clamp(initial, max, factor)

  if jitter == "decorrelated" then
    return respecting_fatal(function(_, _, ctx)
      ctx = ctx or EMPTY
      local prev = math_max(ctx.last_delay or initial, initial)
      return math_min(max, initial + draw(ctx) * (prev * 3 - initial))
    end, retry_fatal)
  end
  return respecting_fatal(function(_, attempt, ctx)
    local base = backoff_base(initial, max, factor, clamp, attempt)
    if jitter == "none" then return base end
    local r = draw(ctx or EMPTY)
    if jitter == "full" then return r * base end
    return base / 2 + r * base / 2
  end, retry_fatal)
end

--- The backoff RFC 6455 7.2.3 recommends: the first attempt waits a
-- uniformly random 0-5 s, later ones a truncated binary exponential
-- backoff.
--
-- Attempt `n` waits `r * min(max, initial * 2^(n-1))` for a fresh random
-- `r` in [0, 1): uniform in [0, 5) s, then [0, 10), [0, 20), ... until the
-- window reaches `max`, where it stays.
-- It stops on a fatal or auth close unless `retry_fatal` is true.
-- @tparam[opt] table opts `initial` (the first window, seconds > 0,
--   default 5), `max` (the largest window, >= initial, default 60),
--   `retry_fatal` (false)
-- @treturn function policy
function reconnect.rfc6455(opts)
  opts = options.check(options.rfc6455, opts, 2)
  local initial = opts.initial or 5
  local max = opts.max or math_max(60, initial)
  local retry_fatal = opts.retry_fatal == true
  local clamp = exponent_clamp(initial, max, 2)
  return respecting_fatal(function(_, attempt, ctx)
    local window = backoff_base(initial, max, 2, clamp, attempt)
    return draw(ctx or EMPTY) * window
  end, retry_fatal)
end

--- Stop another policy after a number of attempts or a time.
--
-- Returns nil when `attempt > max_attempts`, or when
-- `ctx.elapsed + delay > max_elapsed` (the next attempt would start after
-- the budget ran out); otherwise the wrapped policy's delay.
-- @tparam function policy the policy to limit
-- @tparam table opts `max_attempts` (integer >= 0) and/or `max_elapsed`
--   (seconds >= 0)
-- @treturn function policy
function reconnect.limit(policy, opts)
  if not is_callable(policy) then
    error("bad argument #1 to 'limit' (policy function expected, got "
      .. type(policy) .. ")", 2)
  end
  opts = options.check(options.limit, opts, 2)
  local max_attempts, max_elapsed = opts.max_attempts, opts.max_elapsed
  return function(event, attempt, ctx)
    if max_attempts and attempt_number(attempt) > max_attempts then
      return nil
    end
    local elapsed = ctx and ctx.elapsed or 0
    if max_elapsed and elapsed > max_elapsed then return nil end
    local delay = policy(event, attempt, ctx)
    if max_elapsed and type(delay) == "number"
        and elapsed + delay > max_elapsed then
      return nil
    end
    return delay
  end
end

--- Choose a policy by the class of the close (see the classification
-- table): `ctx.class` when set, else `classify(event)`. A class with no
-- policy stops. A built-in policy given for `fatal` or `auth` retries
-- those classes (it was chosen for them).
-- @tparam table policies class name -> policy, for any of "retry",
--   "restart", "overload", "fatal", "auth" and "stop"
-- @treturn function policy
function reconnect.by_class(policies)
  options.check(options.by_class, policies, 2)
  local map = {}
  for class, policy in pairs(policies) do map[class] = policy end
  return function(event, attempt, ctx)
    local class = ctx and ctx.class or reconnect.classify(event)
    local policy = map[class]
    if not policy then return nil end
    ctx = ctx or { class = class }
    routed[ctx] = true
    local ok, delay = pcall(policy, event, attempt, ctx)
    routed[ctx] = nil
    if not ok then error(delay, 0) end
    return delay
  end
end

-- ------------------------------------------------------------------------
-- The default policy
-- ------------------------------------------------------------------------

local overload_backoff = reconnect.exponential{ initial = 5, max = 300,
  jitter = "full" }

local default_by_class = reconnect.by_class{
  retry = reconnect.exponential{ initial = 0.5, max = 30, jitter = "full" },
  restart = function(_, _, ctx)
    return 5 + draw(ctx or EMPTY) * 25
  end,
  overload = function(event, attempt, ctx)
    local after = ctx and ctx.retry_after
    if after then
      local spread = math_min(30, math_max(1, after / 10))
      return after + draw(ctx) * spread
    end
    return overload_backoff(event, attempt, ctx)
  end,
  fatal = reconnect.never(),
  auth = reconnect.never(),
  stop = reconnect.never(),
}

--- The policy a client uses unless told otherwise: by class, as in the
-- module description; never undercuts `ctx.retry_after`.
-- @function default
-- @tparam table event the close event
-- @tparam integer attempt
-- @tparam table ctx
-- @treturn number|nil the delay, or nil to stop
function reconnect.default(event, attempt, ctx)
  local delay = default_by_class(event, attempt, ctx)
  local after = ctx and ctx.retry_after
  if type(delay) == "number" and type(after) == "number" and delay < after
      then
    delay = after
  end
  return delay
end

-- ------------------------------------------------------------------------
-- Retry-After
-- ------------------------------------------------------------------------

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
  jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }
local DAYS = { mon = true, tue = true, wed = true, thu = true, fri = true,
  sat = true, sun = true, monday = true, tuesday = true, wednesday = true,
  thursday = true, friday = true, saturday = true, sunday = true }
local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local YEAR = 31556952         -- the mean Gregorian year, in seconds

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
-- days_from_civil), with floor division only.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math_floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math_floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math_floor(yoe / 4) - math_floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function epoch_of(wday, day, mon, year, h, mi, s)
  if not DAYS[wday:lower()] then return nil end
  local m = MONTHS[mon:lower()]
  if not m then return nil end
  day, year = tonumber(day), tonumber(year)
  h, mi, s = tonumber(h), tonumber(mi), tonumber(s)
  local leap = (year % 4 == 0 and year % 100 ~= 0) or year % 400 == 0
  local last = (m == 2 and leap) and 29 or MONTH_DAYS[m]
  if day < 1 or day > last or h > 23 or mi > 59 or s > 60 then
    return nil
  end
  return days_from_civil(year, m, day) * 86400 + h * 3600 + mi * 60 + s
end

local function http_date(v, now)
  -- IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
  local wd, d, mo, y, h, mi, s = v:match(
    "^(%a+), (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if wd then return epoch_of(wd, d, mo, y, h, mi, s) end
  -- asctime: Sun Nov  6 08:49:37 1994
  wd, mo, d, h, mi, s, y = v:match(
    "^(%a%a%a) (%a%a%a) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  if wd then return epoch_of(wd, (d:gsub(" ", "0")), mo, y, h, mi, s) end
  -- RFC 850: Sunday, 06-Nov-94 08:49:37 GMT. A two-digit year more than
  -- 50 years ahead is the latest past year with those digits (RFC 7231
  -- 7.1.1.1).
  wd, d, mo, y, h, mi, s = v:match(
    "^(%a+), (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not wd then return nil end
  local this_year = 1970 + math_floor(now / YEAR)
  local year = this_year - this_year % 100 + tonumber(y)
  if year > this_year + 50 then year = year - 100
  elseif year + 100 <= this_year + 50 then year = year + 100 end
  return epoch_of(wd, d, mo, tostring(year), h, mi, s)
end

--- Parse a `Retry-After` header value (RFC 7231 7.1.3) into seconds.
-- @tparam string value delta-seconds ("120") or an HTTP-date
--   ("Wed, 21 Oct 2015 07:28:00 GMT"; the obsolete RFC 850 and asctime
--   forms too)
-- @tparam[opt] number now_epoch the current time, seconds since the epoch
--   (UTC); default `os.time()`
-- @treturn number|nil seconds to wait (a date in the past gives 0), or
--   nil when the value is neither form
function reconnect.parse_retry_after(value, now_epoch)
  if type(value) == "number" then
    if is_finite(value) and value >= 0 and value == math_floor(value) then
      return value
    end
    return nil
  end
  if type(value) ~= "string" then return nil end
  local v = value:match("^[ \t]*(.-)[ \t]*$")
  if v:match("^%d+$") then return tonumber(v) end
  local now = now_epoch or os_time()
  local t = http_date(v, now)
  if not t then return nil end
  return math_max(0, t - now)
end

return reconnect
