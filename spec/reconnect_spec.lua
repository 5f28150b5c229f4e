local reconnect = require "ws.reconnect"
local codes = require "ws.codes"

codes.define(4321, "spec_reconnect_banned", "fatal")
codes.define(4322, "spec_reconnect_done", "normal")

-- A random source that returns the given values in order, and fails the
-- spec if a policy draws more than it was given.
local function scripted(...)
  local values, i = { ... }, 0
  local source = {}
  setmetatable(source, { __call = function()
    i = i + 1
    local v = values[i]
    if v == nil then error("scripted random source exhausted", 2) end
    return v
  end })
  source.draws = function() return i end
  return source
end

-- A ctx with a scripted random source.
local function ctx_with(...)
  return { elapsed = 0, random = scripted(...) }
end

-- The message a call raises, without position information.
local function message_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return err
end

-- Delays for attempts 1..n, with the same ctx.
local function delays(policy, n, ctx)
  local out = {}
  for attempt = 1, n do out[attempt] = policy({}, attempt, ctx) end
  return out
end

local function is_finite(n)
  return n == n and n > -math.huge and n < math.huge
end

describe("ws.reconnect", function()
  describe("classify", function()

    local rows = {
      { "a close we asked for", { code = 1000, initiator = "local",
        clean = true }, "stop" },
      { "a local close with an application code",
        { code = 4100, initiator = "local", clean = true }, "stop" },
      { "a remote 1000", { code = 1000, initiator = "remote", clean = true },
        "stop" },
      { "1001", { code = 1001, initiator = "remote" }, "retry" },
      { "1005", { code = 1005, initiator = "remote" }, "retry" },
      { "1006 after eof", { code = 1006, initiator = "transport",
        error = "eof" }, "retry" },
      { "1006 after a refused connect", { code = 1006,
        initiator = "transport", error = "refused" }, "retry" },
      { "a heartbeat timeout we detected", { code = 1006, initiator = "local",
        error = "heartbeat_timeout" }, "retry" },
      { "a transport failure with no code", { initiator = "transport",
        error = "timeout" }, "retry" },
      { "1011", { code = 1011, initiator = "remote" }, "retry" },
      { "1014", { code = 1014, initiator = "remote" }, "retry" },
      { "1012", { code = 1012, initiator = "remote" }, "restart" },
      { "1013", { code = 1013, initiator = "remote" }, "overload" },
      { "HTTP 429", { code = 1006, error = "http", http_status = 429 },
        "overload" },
      { "HTTP 503", { code = 1006, error = "http", http_status = 503 },
        "overload" },
      { "HTTP 401", { code = 1006, error = "http", http_status = 401 },
        "auth" },
      { "HTTP 403", { code = 1006, error = "http", http_status = 403 },
        "auth" },
      { "HTTP 404", { code = 1006, error = "http", http_status = 404 },
        "fatal" },
      { "HTTP 500", { code = 1006, error = "http", http_status = 500 },
        "retry" },
      { "HTTP 502", { code = 1006, error = "http", http_status = 502 },
        "retry" },
      { "HTTP 200", { code = 1006, error = "http", http_status = 200 },
        "fatal" },
      { "HTTP 302", { code = 1006, error = "http", http_status = 302 },
        "fatal" },
      { "a 101 followed by 1006", { code = 1006, initiator = "transport",
        http_status = 101 }, "retry" },
      { "1002", { code = 1002, initiator = "remote" }, "fatal" },
      { "1003", { code = 1003, initiator = "remote" }, "fatal" },
      { "1007", { code = 1007, initiator = "remote" }, "fatal" },
      { "1008", { code = 1008, initiator = "remote" }, "fatal" },
      { "1009", { code = 1009, initiator = "remote" }, "fatal" },
      { "1010", { code = 1010, initiator = "remote" }, "fatal" },
      { "1015", { code = 1015, initiator = "transport" }, "fatal" },
      { "a TLS failure", { code = 1006, initiator = "transport",
        error = "tls" }, "fatal" },
      { "a DNS failure", { code = 1006, initiator = "transport",
        error = "dns" }, "retry" },
      { "the invalid code 1004", { code = 1004, initiator = "remote" },
        "fatal" },
      { "the invalid code 2000", { code = 2000, initiator = "remote" },
        "fatal" },
      { "an undefined application code 4100", { code = 4100,
        initiator = "remote" }, "retry" },
      { "an application code defined fatal", { code = 4321,
        initiator = "remote" }, "fatal" },
      { "an application code defined normal", { code = 4322,
        initiator = "remote" }, "stop" },
    }
    for _, row in ipairs(rows) do
      it("classifies " .. row[1] .. " as " .. row[3], function()
        assert.are.equal(row[3], reconnect.classify(row[2]))
      end)
    end

    it("raises when the event is not a table", function()
      assert.are.equal("bad argument #1 to 'classify' (close event table "
        .. "expected, got nil)", message_of(reconnect.classify, nil))
    end)
  end)

  describe("never", function()
    it("always stops", function()
      local p = reconnect.never()
      assert.is_nil(p({ code = 1006 }, 1, ctx_with()))
      assert.is_nil(p({ code = 1006 }, 100, ctx_with()))
    end)
  end)

  describe("fixed", function()
    it("waits the same delay on every attempt", function()
      assert.are.same({ 2, 2, 2, 2 }, delays(reconnect.fixed(2), 4, {}))
    end)

    it("accepts a zero delay", function()
      assert.are.equal(0, reconnect.fixed(0)({}, 1, {}))
    end)

    it("rejects a negative delay, naming it", function()
      assert.are.equal("bad argument #1 to 'fixed' (delay: finite number "
        .. ">= 0 expected, got -1)", message_of(reconnect.fixed, -1))
    end)

    it("rejects a delay that is not a number", function()
      assert.are.equal("bad argument #1 to 'fixed' (delay: finite number "
        .. '>= 0 expected, got "1")', message_of(reconnect.fixed, "1"))
    end)

    it("rejects an infinite delay", function()
      assert.are.equal("bad argument #1 to 'fixed' (delay: finite number "
        .. ">= 0 expected, got inf)", message_of(reconnect.fixed, math.huge))
    end)
  end)

  describe("exponential", function()
    it("doubles from 0.5 s up to 30 s without jitter", function()
      local p = reconnect.exponential{ jitter = "none" }
      assert.are.same({ 0.5, 1, 2, 4, 8, 16, 30, 30 }, delays(p, 8, {}))
    end)

    it("grows by the given factor up to max", function()
      local p = reconnect.exponential{ initial = 1, max = 100, factor = 3,
        jitter = "none" }
      assert.are.same({ 1, 3, 9, 27, 81, 100 }, delays(p, 6, {}))
    end)

    it("stays at initial with factor 1", function()
      local p = reconnect.exponential{ initial = 2, factor = 1,
        jitter = "none" }
      assert.are.same({ 2, 2, 2 }, delays(p, 3, {}))
    end)

    it("defaults to full jitter: random * base", function()
      local p = reconnect.exponential{}
      local ctx = ctx_with(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)
      assert.are.same({ 0.25, 0.5, 1, 2, 4, 8, 15, 15 }, delays(p, 8, ctx))
    end)

    it("full jitter can wait no time at all", function()
      local p = reconnect.exponential{ jitter = "full" }
      assert.are.equal(0, p({}, 5, ctx_with(0)))
    end)

    it("equal jitter waits base/2 + random * base/2", function()
      local p = reconnect.exponential{ jitter = "equal" }
      local ctx = ctx_with(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)
      assert.are.same({ 0.375, 0.75, 1.5, 3, 6, 12, 22.5, 22.5 },
        delays(p, 8, ctx))
    end)

    it("equal jitter never waits less than half the base", function()
      local p = reconnect.exponential{ jitter = "equal" }
      assert.are.equal(8, p({}, 6, ctx_with(0)))
    end)

    it("decorrelated jitter grows from the previous delay", function()
      local p = reconnect.exponential{ jitter = "decorrelated" }
      local ctx = ctx_with(0.5, 0.5, 0.25)
      local d1 = p({}, 1, ctx)
      ctx.last_delay = d1
      local d2 = p({}, 2, ctx)
      ctx.last_delay = d2
      local d3 = p({}, 3, ctx)
      -- 0.5 + r * (3 * max(last or 0.5, 0.5) - 0.5)
      assert.are.same({ 1, 1.75, 1.6875 }, { d1, d2, d3 })
    end)

    it("decorrelated jitter is capped at max", function()
      local p = reconnect.exponential{ jitter = "decorrelated" }
      local ctx = ctx_with(0.75)
      ctx.last_delay = 20
      assert.are.equal(30, p({}, 9, ctx))
    end)

    it("decorrelated jitter never waits less than initial", function()
      local p = reconnect.exponential{ initial = 2, jitter = "decorrelated" }
      local ctx = ctx_with(0)
      ctx.last_delay = 0.1
      assert.are.equal(2, p({}, 4, ctx))
    end)

    it("gives exactly max at attempt 100000 without jitter", function()
      local p = reconnect.exponential{ jitter = "none" }
      assert.are.equal(30, p({}, 100000, {}))
    end)

    for _, case in ipairs{ { "full", 15 }, { "equal", 22.5 },
        { "decorrelated", 7.75 } } do
      it("stays finite and within [0, max] at attempt 100000 with "
          .. case[1] .. " jitter", function()
        local p = reconnect.exponential{ jitter = case[1] }
        local ctx = ctx_with(0.5)
        ctx.last_delay = 5
        local d = p({}, 100000, ctx)
        assert.is_true(is_finite(d) and d >= 0 and d <= 30)
        assert.are.equal(case[2], d)
      end)
    end

    it("stays finite for an infinite attempt number", function()
      local p = reconnect.exponential{ jitter = "none" }
      assert.are.equal(30, p({}, math.huge, {}))
    end)

    it("reaches max at large attempts even with a small factor", function()
      local p = reconnect.exponential{ initial = 0.5, max = 30,
        factor = 1.01, jitter = "none" }
      assert.are.equal(30, p({}, 100000, {}))
    end)

    it("reaches max at large attempts with a huge factor", function()
      local p = reconnect.exponential{ initial = 1e-300, max = 1e300,
        factor = 1e300, jitter = "none" }
      assert.are.equal(1e300, p({}, 100000, {}))
    end)

    it("draws fresh randomness on every call", function()
      local p = reconnect.exponential{}
      local ctx = ctx_with(0.5, 0.25)
      assert.are.equal(1, p({}, 3, ctx))
      assert.are.equal(0.5, p({}, 3, ctx))
    end)

    it("draws exactly one random number per delay", function()
      local p = reconnect.exponential{ jitter = "equal" }
      local ctx = ctx_with(0.5, 0.5, 0.5)
      delays(p, 3, ctx)
      assert.are.equal(3, ctx.random.draws())
    end)

    it("draws no random number without jitter", function()
      local p = reconnect.exponential{ jitter = "none" }
      local ctx = ctx_with()
      delays(p, 3, ctx)
      assert.are.equal(0, ctx.random.draws())
    end)

    it("defaults max to initial when initial is above 30", function()
      local p = reconnect.exponential{ initial = 60, jitter = "none" }
      assert.are.equal(60, p({}, 5, {}))
    end)

    it("works with no ctx at all", function()
      local p = reconnect.exponential{ jitter = "none" }
      assert.are.equal(2, p({}, 3))
    end)

    it("treats a missing attempt number as the first", function()
      local p = reconnect.exponential{ jitter = "none" }
      assert.are.equal(0.5, p({}, nil, {}))
    end)
  end)

  describe("rfc6455", function()
    it("waits uniformly in 0-5 s before the first attempt", function()
      local p = reconnect.rfc6455{}
      assert.are.equal(2.5, p({}, 1, ctx_with(0.5)))
    end)

    it("waits just under 5 s at most before the first attempt", function()
      local p = reconnect.rfc6455()
      local d = p({}, 1, ctx_with(0.999))
      assert.is_true(d < 5 and d > 4.99)
    end)

    it("doubles the window on later attempts up to 60 s", function()
      local p = reconnect.rfc6455{}
      local ctx = ctx_with(0.5, 0.5, 0.5, 0.5, 0.5, 0.5)
      assert.are.same({ 2.5, 5, 10, 20, 30, 30 }, delays(p, 6, ctx))
    end)

    it("honours initial and max", function()
      local p = reconnect.rfc6455{ initial = 1, max = 6 }
      local ctx = ctx_with(0.5, 0.5, 0.5, 0.5)
      assert.are.same({ 0.5, 1, 2, 3 }, delays(p, 4, ctx))
    end)

    it("stays finite and within [0, max] at attempt 100000", function()
      local p = reconnect.rfc6455{}
      assert.are.equal(30, p({}, 100000, ctx_with(0.5)))
    end)

    it("draws fresh randomness on every call", function()
      local p = reconnect.rfc6455{}
      local ctx = ctx_with(0.5, 0.25)
      assert.are.equal(2.5, p({}, 1, ctx))
      assert.are.equal(1.25, p({}, 1, ctx))
    end)
  end)

  describe("the random source", function()
    local saved
    before_each(function() saved = reconnect.random end)
    after_each(function() reconnect.random = saved end)

    it("is math.random by default", function()
      assert.are.equal(math.random, reconnect.random)
    end)

    it("is reconnect.random when ctx has none, looked up per call",
        function()
      local p = reconnect.exponential{}
      reconnect.random = scripted(0.25)
      assert.are.equal(0.5, p({}, 3, { elapsed = 0 }))
    end)

    it("is ctx.random in preference to reconnect.random", function()
      local p = reconnect.exponential{}
      reconnect.random = scripted()
      assert.are.equal(1, p({}, 3, ctx_with(0.5)))
    end)

    it("gives different delays from math.random across calls", function()
      local p = reconnect.exponential{}
      local seen, distinct = {}, 0
      for _ = 1, 50 do
        local d = p({}, 10, {})
        if not seen[d] then seen[d], distinct = true, distinct + 1 end
        assert.is_true(d >= 0 and d <= 30)
      end
      assert.is_true(distinct > 1)
    end)
  end)

  describe("limit", function()
    it("passes the policy's delay through within the limits", function()
      local p = reconnect.limit(reconnect.fixed(1), { max_attempts = 3 })
      assert.are.same({ 1, 1, 1 }, delays(p, 3, { elapsed = 0 }))
    end)

    it("stops after max_attempts", function()
      local p = reconnect.limit(reconnect.fixed(1), { max_attempts = 3 })
      assert.is_nil(p({}, 4, { elapsed = 0 }))
    end)

    it("never retries with max_attempts 0", function()
      local p = reconnect.limit(reconnect.fixed(1), { max_attempts = 0 })
      assert.is_nil(p({}, 1, { elapsed = 0 }))
    end)

    it("does not call the policy once the attempts are spent", function()
      local p = reconnect.limit(function() error("called") end,
        { max_attempts = 1 })
      assert.is_nil(p({}, 2, { elapsed = 0 }))
    end)

    it("allows an attempt that starts exactly at max_elapsed", function()
      local p = reconnect.limit(reconnect.fixed(1), { max_elapsed = 10 })
      assert.are.equal(1, p({}, 1, { elapsed = 9 }))
    end)

    it("stops when elapsed plus the delay passes max_elapsed", function()
      local p = reconnect.limit(reconnect.fixed(1), { max_elapsed = 10 })
      assert.is_nil(p({}, 1, { elapsed = 9.5 }))
    end)

    it("stops without asking the policy once max_elapsed has passed",
        function()
      local p = reconnect.limit(function() error("called") end,
        { max_elapsed = 10 })
      assert.is_nil(p({}, 1, { elapsed = 11 }))
    end)

    it("stops when the wrapped policy stops", function()
      local p = reconnect.limit(reconnect.never(), { max_attempts = 5 })
      assert.is_nil(p({}, 1, { elapsed = 0 }))
    end)

    it("passes event, attempt and ctx to the policy", function()
      local got
      local p = reconnect.limit(function(ev, attempt, ctx)
        got = { ev, attempt, ctx }
        return 0
      end, { max_attempts = 5 })
      local ev, ctx = { code = 1006 }, { elapsed = 0 }
      p(ev, 2, ctx)
      assert.are.equal(ev, got[1])
      assert.are.equal(2, got[2])
      assert.are.equal(ctx, got[3])
    end)

    it("combines both limits", function()
      local p = reconnect.limit(reconnect.fixed(5),
        { max_attempts = 10, max_elapsed = 12 })
      assert.are.same({ 5, 5 }, { p({}, 1, { elapsed = 0 }),
        p({}, 2, { elapsed = 5 }) })
      assert.is_nil(p({}, 3, { elapsed = 10 }))
    end)
  end)

  describe("the built-in delay policies and fatal closes", function()
    local built = {
      fixed = function(o) return reconnect.fixed(2, o) end,
      exponential = function(o)
        o = o or {}
        o.jitter = "none"
        return reconnect.exponential(o)
      end,
      rfc6455 = function(o) return reconnect.rfc6455(o) end,
    }
    local random = function() return 0.5 end
    for name, make in pairs(built) do
      it(name .. " stops on fatal and auth closes unless retry_fatal",
        function()
          local p, r = make(), make{ retry_fatal = true }
          for _, class in ipairs{ "fatal", "auth" } do
            assert.is_nil(p({ code = 1006 }, 1, { class = class }))
            assert.is_number(r({ code = 1006 }, 1, { class = class,
              random = random }))
          end
          -- classified from the event when ctx has no class
          assert.is_nil(p({ code = 1015, error = "tls" }, 1, {}))
          assert.is_nil(p({ code = 1006, error = "http", http_status = 403 },
            1, {}))
          assert.is_number(p({ code = 1006 }, 1, { random = random }))
          assert.is_number(p({ code = 1001, initiator = "remote" }, 1,
            { class = "retry", random = random }))
        end)
    end

    it("refuses a retry_fatal that is not a boolean", function()
      assert.are.equal("bad argument #2 to 'fixed' (option 'retry_fatal': "
        .. "boolean expected, got string)",
        message_of(reconnect.fixed, 1, { retry_fatal = "yes" }))
      assert.are.equal("bad argument #1 to 'exponential' (option "
        .. "'retry_fatal': boolean expected, got number)",
        message_of(reconnect.exponential, { retry_fatal = 1 }))
      assert.are.equal("bad argument #2 to 'fixed' (unknown option 'max')",
        message_of(reconnect.fixed, 1, { max = 3 }))
    end)

    it("retries a fatal close when by_class routes it to one", function()
      local p = reconnect.by_class{ fatal = reconnect.limit(
        reconnect.fixed(30), { max_attempts = 3 }) }
      assert.are.equal(30, p({ code = 1008, initiator = "remote" }, 1, {}))
      assert.is_nil(p({ code = 1008, initiator = "remote" }, 4, {}))
    end)
  end)

  describe("by_class", function()
    local p = reconnect.by_class{
      retry = reconnect.fixed(1), restart = reconnect.fixed(2),
      overload = reconnect.fixed(3), fatal = reconnect.fixed(4),
      auth = reconnect.fixed(5), stop = reconnect.fixed(6),
    }

    for class, delay in pairs{ retry = 1, restart = 2, overload = 3,
        fatal = 4, auth = 5, stop = 6 } do
      it("routes ctx.class '" .. class .. "' to its policy", function()
        assert.are.equal(delay, p({ code = 1006 }, 1, { class = class }))
      end)
    end

    it("classifies the event when ctx.class is nil", function()
      assert.are.equal(2, p({ code = 1012, initiator = "remote" }, 1, {}))
    end)

    it("stops for a class with no policy", function()
      local q = reconnect.by_class{ retry = reconnect.fixed(1) }
      assert.is_nil(q({ code = 1013, initiator = "remote" }, 1, {}))
    end)

    it("lets an auth policy rewrite the headers for the next attempt",
        function()
      local q = reconnect.by_class{ auth = function(_, _, ctx)
        ctx.headers.Authorization = "Bearer fresh"
        return 0
      end }
      local ctx = { headers = { Authorization = "Bearer stale" } }
      assert.are.equal(0, reconnect.call(q, { code = 1006, error = "http",
        http_status = 401 }, 1, ctx))
      assert.are.equal("Bearer fresh", ctx.headers.Authorization)
    end)
  end)

  describe("default", function()
    local ev = function(t) return t end
    -- { what, event, ctx fields, delay with random 0.5 at attempt 1 }
    local rows = {
      { "stops after a local close", ev{ code = 1000, initiator = "local",
        clean = true }, {}, nil },
      { "stops after a remote 1000", ev{ code = 1000, initiator = "remote",
        clean = true }, {}, nil },
      { "retries after 1001", ev{ code = 1001, initiator = "remote" }, {},
        0.25 },
      { "retries after 1005", ev{ code = 1005, initiator = "remote" }, {},
        0.25 },
      { "retries after 1006 with error eof", ev{ code = 1006,
        initiator = "transport", error = "eof" }, {}, 0.25 },
      { "retries after 1006 with error refused", ev{ code = 1006,
        initiator = "transport", error = "refused" }, {}, 0.25 },
      { "retries after 1011", ev{ code = 1011, initiator = "remote" }, {},
        0.25 },
      { "retries after 1014", ev{ code = 1014, initiator = "remote" }, {},
        0.25 },
      { "waits 5 + r * 25 s after 1012", ev{ code = 1012,
        initiator = "remote" }, {}, 17.5 },
      { "backs off from 5 s after 1013", ev{ code = 1013,
        initiator = "remote" }, {}, 2.5 },
      { "waits Retry-After plus jitter after HTTP 429", ev{ code = 1006,
        error = "http", http_status = 429 }, { retry_after = 7 }, 7.5 },
      { "backs off from 5 s after HTTP 503", ev{ code = 1006,
        error = "http", http_status = 503 }, {}, 2.5 },
      { "stops after HTTP 401", ev{ code = 1006, error = "http",
        http_status = 401 }, {}, nil },
      { "stops after HTTP 403", ev{ code = 1006, error = "http",
        http_status = 403 }, {}, nil },
      { "stops after HTTP 404", ev{ code = 1006, error = "http",
        http_status = 404 }, {}, nil },
      { "retries after HTTP 500", ev{ code = 1006, error = "http",
        http_status = 500 }, {}, 0.25 },
      { "stops after 1002", ev{ code = 1002, initiator = "remote" }, {}, nil },
      { "stops after 1003", ev{ code = 1003, initiator = "remote" }, {}, nil },
      { "stops after 1007", ev{ code = 1007, initiator = "remote" }, {}, nil },
      { "stops after 1008", ev{ code = 1008, initiator = "remote" }, {}, nil },
      { "stops after 1009", ev{ code = 1009, initiator = "remote" }, {}, nil },
      { "stops after 1010", ev{ code = 1010, initiator = "remote" }, {}, nil },
      { "stops after 1015", ev{ code = 1015, initiator = "transport" }, {},
        nil },
      { "stops after a TLS failure", ev{ code = 1006,
        initiator = "transport", error = "tls" }, {}, nil },
      { "stops after the invalid code 1004", ev{ code = 1004,
        initiator = "remote" }, {}, nil },
      { "retries after the application code 4100", ev{ code = 4100,
        initiator = "remote" }, {}, 0.25 },
      { "stops after an application code defined fatal", ev{ code = 4321,
        initiator = "remote" }, {}, nil },
    }
    for _, row in ipairs(rows) do
      it(row[1], function()
        local ctx = ctx_with(0.5)
        for k, v in pairs(row[3]) do ctx[k] = v end
        local delay, err = reconnect.call(reconnect.default, row[2], 1, ctx)
        assert.is_nil(err)
        assert.are.equal(row[4], delay)
      end)
    end

    it("waits at least 5 s after 1012", function()
      local ev1012 = { code = 1012, initiator = "remote" }
      assert.are.equal(5, reconnect.call(reconnect.default, ev1012, 1,
        ctx_with(0)))
    end)

    it("waits under 30 s after 1012", function()
      local ev1012 = { code = 1012, initiator = "remote" }
      local d = reconnect.call(reconnect.default, ev1012, 1, ctx_with(0.999))
      assert.is_true(d >= 29.9 and d < 30)
    end)

    it("backs off ten times longer after 1013 than after 1006", function()
      local e1013 = { code = 1013, initiator = "remote" }
      local e1006 = { code = 1006, initiator = "transport", error = "eof" }
      assert.are.same({ 40, 4 }, {
        reconnect.call(reconnect.default, e1013, 5, ctx_with(0.5)),
        reconnect.call(reconnect.default, e1006, 5, ctx_with(0.5)) })
    end)

    it("caps the overload backoff at 300 s", function()
      local e1013 = { code = 1013, initiator = "remote" }
      assert.are.equal(150, reconnect.call(reconnect.default, e1013, 100000,
        ctx_with(0.5)))
    end)

    it("caps the retry backoff at 30 s", function()
      local e1006 = { code = 1006, initiator = "transport", error = "eof" }
      assert.are.equal(15, reconnect.call(reconnect.default, e1006, 100000,
        ctx_with(0.5)))
    end)

    it("waits exactly Retry-After when the jitter draws 0", function()
      local ctx = ctx_with(0)
      ctx.retry_after = 7
      assert.are.equal(7, reconnect.call(reconnect.default, { code = 1006,
        error = "http", http_status = 429 }, 1, ctx))
    end)

    it("adds up to a tenth of a long Retry-After as jitter", function()
      local ctx = ctx_with(0.5)
      ctx.retry_after = 120
      assert.are.equal(126, reconnect.call(reconnect.default, { code = 1006,
        error = "http", http_status = 503 }, 1, ctx))
    end)

    it("never undercuts Retry-After whatever the class", function()
      local ctx = ctx_with(0.5)
      ctx.retry_after = 10
      assert.are.equal(10, reconnect.call(reconnect.default, { code = 1006,
        error = "http", http_status = 500 }, 1, ctx))
    end)

    it("stops for a fatal class even with Retry-After", function()
      local ctx = ctx_with()
      ctx.retry_after = 10
      assert.is_nil(reconnect.call(reconnect.default, { code = 1006,
        error = "http", http_status = 404 }, 1, ctx))
    end)
  end)

  describe("call", function()
    it("returns the policy's delay", function()
      assert.are.equal(3, reconnect.call(reconnect.fixed(3), {}, 1, {}))
    end)

    it("returns nil and no error when the policy stops", function()
      local delay, err = reconnect.call(reconnect.never(), {}, 1, {})
      assert.is_nil(delay)
      assert.is_nil(err)
    end)

    it("treats a policy that raises as stop and reports the error",
        function()
      local delay, err = reconnect.call(function() error("boom", 0) end,
        { code = 1006 }, 1, {})
      assert.is_nil(delay)
      assert.are.equal("policy raised: boom", err)
    end)

    it("treats a negative delay as stop", function()
      local delay, err = reconnect.call(function() return -1 end, {}, 1, {})
      assert.is_nil(delay)
      assert.are.equal("policy returned -1", err)
    end)

    it("treats NaN as stop", function()
      local delay, err = reconnect.call(function() return 0 / 0 end, {}, 1,
        {})
      assert.is_nil(delay)
      assert.are.equal("policy returned NaN", err)
    end)

    it("treats an infinite delay as stop", function()
      local delay, err = reconnect.call(function() return math.huge end, {},
        1, {})
      assert.is_nil(delay)
      assert.are.equal("policy returned inf", err)
    end)

    it("treats a string as stop, even a numeric one", function()
      local delay, err = reconnect.call(function() return "5" end, {}, 1, {})
      assert.is_nil(delay)
      assert.are.equal('policy returned a string ("5")', err)
    end)

    it("treats a boolean as stop", function()
      local delay, err = reconnect.call(function() return true end, {}, 1,
        {})
      assert.is_nil(delay)
      assert.are.equal("policy returned a boolean (true)", err)
    end)

    it("fills ctx.class from the event", function()
      local ctx = {}
      reconnect.call(reconnect.never(), { code = 1012, initiator = "remote" },
        1, ctx)
      assert.are.equal("restart", ctx.class)
    end)

    it("keeps a ctx.class the caller set", function()
      local ctx = { class = "retry" }
      reconnect.call(reconnect.never(), { code = 1002, initiator = "remote" },
        1, ctx)
      assert.are.equal("retry", ctx.class)
    end)

    it("gives the policy a ctx when the caller has none", function()
      local got
      reconnect.call(function(_, _, ctx) got = ctx end, { code = 1006 }, 1)
      assert.are.equal("retry", got.class)
    end)

    it("accepts a callable table as a policy", function()
      local p = setmetatable({}, { __call = function() return 4 end })
      assert.are.equal(4, reconnect.call(p, {}, 1, {}))
    end)

    it("raises when the policy is not callable", function()
      assert.are.equal("bad argument #1 to 'call' (policy function expected, "
        .. "got number)", message_of(reconnect.call, 5, {}, 1, {}))
    end)
  end)

  describe("parse_retry_after", function()
    local date_epoch = 1445412480    -- Wed, 21 Oct 2015 07:28:00 GMT

    it("reads delta-seconds", function()
      assert.are.equal(120, reconnect.parse_retry_after("120"))
    end)

    it("reads zero delta-seconds", function()
      assert.are.equal(0, reconnect.parse_retry_after("0"))
    end)

    it("ignores surrounding whitespace", function()
      assert.are.equal(120, reconnect.parse_retry_after(" 120\t"))
    end)

    it("accepts a number", function()
      assert.are.equal(30, reconnect.parse_retry_after(30))
    end)

    it("reads an IMF-fixdate relative to now", function()
      assert.are.equal(60, reconnect.parse_retry_after(
        "Wed, 21 Oct 2015 07:28:00 GMT", date_epoch - 60))
    end)

    it("gives 0 for a date in the past", function()
      assert.are.equal(0, reconnect.parse_retry_after(
        "Wed, 21 Oct 2015 07:28:00 GMT", date_epoch + 3600))
    end)

    it("gives 0 for a past date when now defaults to os.time()", function()
      assert.are.equal(0, reconnect.parse_retry_after(
        "Wed, 21 Oct 2015 07:28:00 GMT"))
    end)

    it("reads a leap day", function()
      assert.are.equal(1, reconnect.parse_retry_after(
        "Thu, 29 Feb 2024 00:00:00 GMT", 1709164799))
    end)

    it("reads the obsolete RFC 850 form", function()
      assert.are.equal(60, reconnect.parse_retry_after(
        "Wednesday, 21-Oct-15 07:28:00 GMT", date_epoch - 60))
    end)

    it("reads an RFC 850 year up to 50 years ahead as the future",
        function()
      assert.are.equal(2840140800 - date_epoch, reconnect.parse_retry_after(
        "Thursday, 01-Jan-60 00:00:00 GMT", date_epoch))
    end)

    it("reads an RFC 850 year over 50 years ahead as the past", function()
      assert.are.equal(0, reconnect.parse_retry_after(
        "Thursday, 01-Jan-70 00:00:00 GMT", date_epoch))
    end)

    it("reads the obsolete asctime form", function()
      assert.are.equal(60, reconnect.parse_retry_after(
        "Wed Oct 21 07:28:00 2015", date_epoch - 60))
    end)

    it("reads an asctime day padded with a space", function()
      assert.are.equal(10, reconnect.parse_retry_after(
        "Sun Nov  6 08:49:37 1994", 784111777 - 10))
    end)

    local garbage = {
      "", "soon", "-5", "1.5", "12abc", "0x10", "120 s",
      "Wed, 32 Oct 2015 07:28:00 GMT",
      "Sun, 29 Feb 2015 07:28:00 GMT",
      "Wed, 21 Foo 2015 07:28:00 GMT",
      "Xyz, 21 Oct 2015 07:28:00 GMT",
      "Wed, 21 Oct 2015 24:28:00 GMT",
      "Wed, 21 Oct 2015 07:60:00 GMT",
      "Wed, 21 Oct 2015 07:28:00",
      "Wed, 21 Oct 2015 07:28:00 PST",
      "2015-10-21T07:28:00Z",
    }
    for _, value in ipairs(garbage) do
      it("rejects " .. string.format("%q", value), function()
        assert.is_nil(reconnect.parse_retry_after(value, date_epoch))
      end)
    end

    it("rejects a negative number", function()
      assert.is_nil(reconnect.parse_retry_after(-1))
    end)

    it("rejects nil", function()
      assert.is_nil(reconnect.parse_retry_after(nil))
    end)
  end)

  describe("option errors", function()
    local cases = {
      { "exponential initial 0", reconnect.exponential, { initial = 0 },
        "bad argument #1 to 'exponential' (option 'initial': finite number "
        .. "> 0 expected, got 0)" },
      { "exponential initial as a string", reconnect.exponential,
        { initial = "1" }, "bad argument #1 to 'exponential' (option "
        .. "'initial': finite number > 0 expected, got \"1\")" },
      { "exponential max below initial", reconnect.exponential,
        { initial = 2, max = 1 }, "bad argument #1 to 'exponential' (option "
        .. "'max': finite number >= 2 expected, got 1)" },
      { "exponential infinite max", reconnect.exponential,
        { max = math.huge }, "bad argument #1 to 'exponential' (option "
        .. "'max': finite number >= 0.5 expected, got inf)" },
      { "exponential factor below 1", reconnect.exponential,
        { factor = 0.5 }, "bad argument #1 to 'exponential' (option "
        .. "'factor': finite number >= 1 expected, got 0.5)" },
      { "exponential unknown jitter", reconnect.exponential,
        { jitter = "fuLL" }, "bad argument #1 to 'exponential' (option "
        .. "'jitter': \"full\", \"equal\", \"decorrelated\" or \"none\" "
        .. "expected, got \"fuLL\")" },
      { "exponential unknown option", reconnect.exponential,
        { inital = 1 }, "bad argument #1 to 'exponential' (unknown option "
        .. "'inital')" },
      { "exponential options not a table", reconnect.exponential, 5,
        "bad argument #1 to 'exponential' (table of options expected, got "
        .. "number)" },
      { "rfc6455 max below the first window", reconnect.rfc6455,
        { max = 1 }, "bad argument #1 to 'rfc6455' (option 'max': finite "
        .. "number >= 5 expected, got 1)" },
      { "rfc6455 negative initial", reconnect.rfc6455, { initial = -1 },
        "bad argument #1 to 'rfc6455' (option 'initial': finite number > 0 "
        .. "expected, got -1)" },
      { "rfc6455 unknown option", reconnect.rfc6455, { jitter = "none" },
        "bad argument #1 to 'rfc6455' (unknown option 'jitter')" },
    }
    for _, case in ipairs(cases) do
      it("names the option for " .. case[1], function()
        assert.are.equal(case[4], message_of(case[2], case[3]))
      end)
    end

    it("names a policy that is not callable in limit", function()
      assert.are.equal("bad argument #1 to 'limit' (policy function "
        .. "expected, got nil)", message_of(reconnect.limit, nil,
        { max_attempts = 1 }))
    end)

    it("requires limit options", function()
      assert.are.equal("bad argument #2 to 'limit' (table of options "
        .. "expected, got nil)", message_of(reconnect.limit,
        reconnect.never()))
    end)

    it("names a fractional max_attempts", function()
      assert.are.equal("bad argument #2 to 'limit' (option 'max_attempts': "
        .. "integer >= 0 expected, got 1.5)", message_of(reconnect.limit,
        reconnect.never(), { max_attempts = 1.5 }))
    end)

    it("names a negative max_elapsed", function()
      assert.are.equal("bad argument #2 to 'limit' (option 'max_elapsed': "
        .. "finite number >= 0 expected, got -1)", message_of(reconnect.limit,
        reconnect.never(), { max_elapsed = -1 }))
    end)

    it("names an unknown limit option", function()
      assert.are.equal("bad argument #2 to 'limit' (unknown option 'tries')",
        message_of(reconnect.limit, reconnect.never(), { tries = 3 }))
    end)

    it("names an unknown class in by_class", function()
      assert.are.equal("bad argument #1 to 'by_class' (unknown class "
        .. "'retyr')", message_of(reconnect.by_class,
        { retyr = reconnect.never() }))
    end)

    it("names a class whose policy is not callable", function()
      assert.are.equal("bad argument #1 to 'by_class' (policy for 'retry': "
        .. "function expected, got number)", message_of(reconnect.by_class,
        { retry = 5 }))
    end)

    it("requires a table in by_class", function()
      assert.are.equal("bad argument #1 to 'by_class' (table of policies "
        .. "expected, got nil)", message_of(reconnect.by_class))
    end)

    it("points an option error at the caller's line", function()
      local err = message_of(function()
        local p = reconnect.exponential{ initial = 0 }
        return p
      end)
      assert.is_truthy(err:match("reconnect_spec%.lua:%d+: bad argument #1 "
        .. "to 'exponential'"))
    end)

    it("points a jitter error at the caller's line", function()
      local err = message_of(function()
        local p = reconnect.exponential{ jitter = "x" }
        return p
      end)
      assert.is_truthy(err:match("reconnect_spec%.lua:%d+: bad argument #1 "
        .. "to 'exponential'"))
    end)

    it("points an unknown-option error at the caller's line", function()
      local err = message_of(function()
        local p = reconnect.rfc6455{ foo = 1 }
        return p
      end)
      assert.is_truthy(err:match("reconnect_spec%.lua:%d+: bad argument #1 "
        .. "to 'rfc6455'"))
    end)
  end)
end)
