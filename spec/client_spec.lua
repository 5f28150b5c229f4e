-- ws.client: reconnecting by policy against real loopback servers.
local ws = require "ws"
local core = require "ws.core"
local reconnect = require "ws.reconnect"

local until_true = require("support.drive").until_true

-- A port with nothing listening on it (yet).
local function free_port()
  local l = core.tcp_listen("127.0.0.1", 0)
  local p = l:port()
  l:close()
  return p
end

-- Record every client event as a short string.
local function recorder(client)
  local log = {}
  client:on("open", function() log[#log + 1] = "open" end)
  client:on("close", function(_, ev) log[#log + 1] = "close " .. ev.code end)
  client:on("reconnecting", function(_, _, delay, attempt)
    log[#log + 1] = ("reconnecting %d %.2f"):format(attempt, delay)
  end)
  client:on("give_up", function(_, ev) log[#log + 1] = "give_up " .. ev.code end)
  return log
end

local servers = {}
local function listen(opts)
  opts.port = opts.port or 0
  local s = assert(ws.listen(opts))
  servers[#servers + 1] = s
  return s
end

local function url(port) return "ws://127.0.0.1:" .. port .. "/" end

describe("ws.client", function()
  after_each(function()
    for _, s in ipairs(servers) do s:close(1) end
    servers = {}
  end)

  it("reconnects after the server drops TCP, waiting the policy's delay",
    function()
      local n = 0
      local s = listen{ handler = function(conn)
        n = n + 1
        if n == 1 then conn:abort() return end
        conn:receive(5)
      end }
      local c = ws.client(url(s.port), { reconnect = reconnect.fixed(0.05) })
      local log = recorder(c)
      local abnormal = 0
      c:on("close:abnormal", function() abnormal = abnormal + 1 end)
      until_true(function() return #log >= 4 end)
      assert.are.same({ "open", "close 1006", "reconnecting 1 0.05", "open" },
        log)
      assert.are.equal(1, abnormal)
      assert.are.equal("open", c.state)
      c:close()
      assert.are.equal("closed", c.state)
    end)

  it("gives up after a remote 1000 with the default policy", function()
    local s = listen{ handler = function(conn) conn:close("normal") end }
    local c = ws.client(url(s.port))
    local log = recorder(c)
    until_true(function() return c.state == "closed" end)
    assert.are.same({ "open", "close 1000", "give_up 1000" }, log)
  end)

  -- Each server close: the exact event, the named handler, and what the
  -- default policy decides with random() fixed at 0.5.
  local closes = {
    { "going_away", 1001, "retry", 0.25 },            -- 0.5 * 0.5 (full jitter)
    { "internal_error", 1011, "retry", 0.25 },
    { "bad_gateway", 1014, "retry", 0.25 },
    { "service_restart", 1012, "restart", 17.5 },     -- 5 + 0.5 * 25
    { "try_again_later", 1013, "overload", 2.5 },     -- 0.5 * 5 (full jitter)
    { nil, 1005, "retry", 0.25 },
    { "policy_violation", 1008, "fatal", nil },
    { "unsupported_data", 1003, "fatal", nil },
  }
  for _, c in ipairs(closes) do
    local name = require("ws.codes")[c[2]]
    it(("handles a server close with %d %s as %s"):format(c[2], name, c[3]),
      function()
        local s = listen{ handler = function(conn)
          if c[1] then conn:close(c[1], "r") else
            conn._e:close(nil) -- a close frame with no code (1005)
            conn._t:write(conn._e:take_output()) -- no public call sends that
            conn:receive(2)
          end
        end }
        local seen, named, delay, gave_up
        local client = ws.client(url(s.port), { random = function() return 0.5 end,
          reconnect = function(ev, attempt, ctx)
            seen = ctx.class
            return reconnect.default(ev, attempt, ctx)
          end })
        local ev
        client:on("close", function(_, e) ev = ev or e end)
        client:on("close:" .. name, function() named = true end)
        client:on("reconnecting", function(_, _, d) delay = d; client:close() end)
        client:on("give_up", function() gave_up = true end)
        until_true(function() return client.state == "closed" end)
        assert.are.same({ c[2], name, c[1] and "r" or "", true, "remote" },
          { ev.code, ev.name, ev.reason, ev.clean, ev.initiator })
        assert.is_true(named)
        assert.are.equal(c[3], seen)
        assert.are.equal(c[4], delay)
        assert.are.equal(c[4] == nil, gave_up == true)
      end)
  end

  it("keeps trying while connections are refused, then connects", function()
    local port = free_port()
    local c = ws.client(url(port), { reconnect = reconnect.fixed(0.02) })
    local log = recorder(c)
    c:on("reconnecting", function(_, _, _, attempt)
      if attempt == 3 then
        listen{ port = port, handler = function(conn) conn:receive(5) end }
      end
    end)
    until_true(function() return c.state == "open" end)
    assert.are.same({ "close 1006", "reconnecting 1 0.02", "close 1006",
      "reconnecting 2 0.02", "close 1006", "reconnecting 3 0.02", "open" }, log)
    c:close()
  end)

  it("draws exponential delays with the injected random source", function()
    local port = free_port()
    local c = ws.client(url(port), {
      reconnect = reconnect.limit(reconnect.exponential{ initial = 0.04,
        max = 1, jitter = "full" }, { max_attempts = 3 }),
      random = function() return 0.5 end,
    })
    local log = recorder(c)
    until_true(function() return c.state == "closed" end)
    assert.are.same({ "close 1006", "reconnecting 1 0.02", "close 1006",
      "reconnecting 2 0.04", "close 1006", "reconnecting 3 0.08",
      "close 1006", "give_up 1006" }, log)
  end)

  it("passes a 503's Retry-After to the policy as overload", function()
    local s = listen{ handler = function() end, authorize = function()
      return false, 503, { ["Retry-After"] = "7" }
    end }
    local seen
    local c = ws.client(url(s.port), { reconnect = function(ev, _, ctx)
      seen = { ev.http_status, ctx.retry_after, ctx.class }
      return nil
    end })
    until_true(function() return c.state == "closed" end)
    assert.are.same({ 503, 7, "overload" }, seen)
  end)

  it("gives up on 401 with the default policy (auth)", function()
    local s = listen{ handler = function() end, authorize = function()
      return false, 401
    end }
    local c = ws.client(url(s.port))
    local ev
    c:on("give_up", function(_, e) ev = e end)
    until_true(function() return c.state == "closed" end)
    assert.are.same({ 1006, "http", 401 }, { ev.code, ev.error, ev.http_status })
  end)

  it("gives up on 404 with the default policy (fatal)", function()
    local s = listen{ handler = function() end, authorize = function()
      return false, 404
    end }
    local c = ws.client(url(s.port))
    local log = recorder(c)
    until_true(function() return c.state == "closed" end)
    assert.are.same({ "close 1006", "give_up 1006" }, log)
  end)

  it("queues while disconnected and sends the queue in order", function()
    local port = free_port()
    local got = {}
    local c = ws.client(url(port), { reconnect = reconnect.fixed(0.02),
      queue = { max = 3 } })
    assert.is_true(c:send("one"))
    assert.is_true(c:send("two", "binary"))
    assert.is_true(c:send("three"))
    assert.are.same({ nil, "queue_full" }, { c:send("four") })
    c:on("reconnecting", function(_, _, _, attempt)
      if attempt == 1 then
        listen{ port = port, handler = function(conn)
          for d, k in conn:messages() do got[#got + 1] = d .. ":" .. k end
        end }
      end
    end)
    until_true(function() return #got == 3 end)
    assert.are.same({ "one:text", "two:binary", "three:text" }, got)
    assert.are.same({}, c:queued())
    c:close()
  end)

  it("refuses to send while disconnected without a queue", function()
    local c = ws.client(url(free_port()), { reconnect = reconnect.never() })
    assert.are.same({ nil, "not_connected" }, { c:send("x") })
    until_true(function() return c.state == "closed" end)
  end)

  it("hands the queue to give_up", function()
    local c = ws.client(url(free_port()), { reconnect = reconnect.never(),
      queue = { max = 5 } })
    c:send("a")
    c:send("b")
    local unsent
    c:on("give_up", function(_, _, u) unsent = u end)
    until_true(function() return c.state == "closed" end)
    assert.are.same({ { data = "a", kind = "text" },
      { data = "b", kind = "text" } }, unsent)
  end)

  it("does not reset the attempt counter for connections that close at once",
    function()
      local s = listen{ handler = function(conn) conn:close("going_away") end }
      local attempts = {}
      local c = ws.client(url(s.port), { stable_after = 5,
        reconnect = function(_, attempt)
          attempts[#attempts + 1] = attempt
          if attempt < 3 then return 0.01 end
        end })
      until_true(function() return c.state == "closed" end)
      assert.are.same({ 1, 2, 3 }, attempts)
    end)

  it("treats a policy that raises as a stop and reports the error", function()
    local errors = {}
    local loop = require "ws.loop"
    local saved = loop.on_error
    loop.on_error = function(m) errors[#errors + 1] = m end
    local c = ws.client(url(free_port()), { reconnect = function()
      error("policy broke")
    end })
    local ev
    c:on("give_up", function(_, e) ev = e end)
    until_true(function() return c.state == "closed" end)
    loop.on_error = saved
    assert.matches("policy broke", ev.policy_error)
    assert.are.equal(1, #errors)
    assert.matches("policy broke", errors[1])
  end)

  it("stops reconnecting when closed", function()
    local s = listen{ handler = function(conn) conn:receive(5) end }
    local c = ws.client(url(s.port), { reconnect = reconnect.fixed(0.01) })
    local log = recorder(c)
    until_true(function() return c.state == "open" end)
    local ev = c:close("normal", "bye")
    assert.are.same({ 1000, "local" }, { ev.code, ev.initiator })
    local t = ws.now()
    while ws.now() - t < 0.1 do ws.step(0.02) end
    assert.are.same({ "open", "close 1000" }, log)
    assert.are.equal("closed", c.state)
  end)

  it("does not retry a failed first attempt when retry_initial is false",
    function()
      local c = ws.client(url(free_port()), { retry_initial = false,
        reconnect = reconnect.fixed(0.01) })
      local log = recorder(c)
      until_true(function() return c.state == "closed" end)
      assert.are.same({ "close 1006", "give_up 1006" }, log)
    end)

  it("waits until the client gives up", function()
    local c = ws.client(url(free_port()), { reconnect = reconnect.never() })
    assert.is_true(c:wait(5))
    assert.are.equal("closed", c.state)
  end)

  it("raises for an unknown connect option, naming it and ws.client", function()
    assert.has_error(function() ws.client("ws://127.0.0.1:1/", { tiemout = 1 }) end,
      "bad argument #2 to 'client' (unknown option 'tiemout')")
  end)

  it("stops on a fatal close with a built-in delay policy (a 404)",
    function()
      local s = listen{ handler = function() end, authorize = function()
        return false, 404
      end }
      local c = ws.client(url(s.port), {
        reconnect = reconnect.exponential{ initial = 0.01 } })
      local log = recorder(c)
      until_true(function() return c.state == "closed" end)
      assert.are.same({ "close 1006", "give_up 1006" }, log)
    end)

  it("ends with a close event and give_up when its task raises", function()
    local loop = require "ws.loop"
    local saved = loop.on_error
    local errors = {}
    loop.on_error = function(m) errors[#errors + 1] = m end
    local c = ws.client(url(free_port()), { queue = { max = 5 },
      clock = function() error("clock broke", 0) end })
    assert.is_true(c:send("kept"))
    local log = recorder(c)
    local ev, unsent
    c:on("give_up", function(_, e, u) ev, unsent = e, u end)
    local r = { c:wait(5) }
    loop.on_error = saved
    assert.are.same({ nil, "clock broke" }, r)
    assert.are.equal("closed", c.state)
    assert.are.same({ "close 1006", "give_up 1006" }, log)
    assert.are.same({ 1006, "abnormal", false, "local", "internal",
      "clock broke" }, { ev.code, ev.name, ev.clean, ev.initiator, ev.error,
      ev.message })
    assert.are.same({ { data = "kept", kind = "text" } }, unsent)
    assert.are.equal(1, #errors)
    assert.matches("^client: clock broke\nstack traceback:\n", errors[1])
    assert.are.same({ nil, "closed" }, { c:send("late") })
  end)

  it("hands errors raised by its handlers to its error handlers", function()
    local s = listen{ handler = function(conn)
      conn:send("hello")
      conn:receive(5)
    end }
    local c = ws.client(url(s.port))
    local errors = {}
    c:on("message", function() error("handler broke", 0) end)
    c:on("error", function(conn, msg)
      errors[#errors + 1] = { conn == c.conn, msg }
    end)
    until_true(function() return #errors > 0 end)
    assert.are.same({ { true, "client handler 'message': handler broke" } },
      errors)
    assert.are.equal("open", c.state)
    c:close()
  end)

  it("hands the queue over in the close event when closed while "
    .. "disconnected", function()
      local c = ws.client(url(free_port()), { queue = { max = 5 },
        reconnect = reconnect.fixed(10) })
      assert.is_true(c:send("a"))
      assert.is_true(c:send("b", "binary"))
      local log = recorder(c)
      until_true(function() return c.state == "reconnecting" end)
      local ev = c:close("going_away", "bye")
      assert.are.same({ 1001, "going_away", "bye", false, "local",
        "not_connected" }, { ev.code, ev.name, ev.reason, ev.clean,
        ev.initiator, ev.error })
      assert.are.same({ { data = "a", kind = "text" },
        { data = "b", kind = "binary" } }, ev.unsent)
      assert.are.same({}, c:queued())
      assert.is_true(c:wait(5))
      assert.are.same({ "close 1006", "reconnecting 1 10.00", "close 1001" },
        log)
      assert.are.equal(ev, c:close())
    end)

  it("closes a connection that opens after close() was called", function()
    local server_ev
    local s = listen{ authorize = function()
      ws.sleep(0.3)
      return true
    end, handler = function(conn)
      local _, _, ev = conn:receive(5)
      server_ev = ev
    end }
    local c = ws.client(url(s.port))
    local log = recorder(c)
    ws.sleep(0.1)
    assert.are.equal("connecting", c.state)
    local ev = c:close()
    assert.are.equal("not_connected", ev.error)
    until_true(function() return server_ev ~= nil end)
    assert.are.same({ 1000, "remote" }, { server_ev.code,
      server_ev.initiator })
    assert.are.same({ "close 1000" }, log)
  end)

  it("refuses a bad header or protocol at the call, like ws.connect",
    function()
      local u = url(free_port())
      for _, case in ipairs{
        { { headers = { ["Bad Name"] = "x" } },
          "invalid header name \"Bad Name\"" },
        { { protocols = { "a b" } },
          "protocols[1] is not a valid token: \"a b\"" },
      } do
        for _, f in ipairs{ { ws.client, "client" }, { ws.connect, "connect" } } do
          local ok, err = pcall(f[1], u, case[1])
          assert.are.same({ false, "bad argument #2 to '" .. f[2] .. "' ("
            .. case[2] .. ")" }, { ok, err })
        end
      end
    end)
end)

