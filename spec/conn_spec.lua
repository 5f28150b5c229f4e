-- Our client against our server over real loopback sockets.
local ws = require "ws"
local core = require "ws.core"

local run = require("support.drive").run

local function echo_server(opts)
  opts = opts or {}
  opts.port = opts.port or 0
  opts.handler = opts.handler or function(conn)
    for data, kind in conn:messages() do conn:send(data, kind) end
  end
  return assert(ws.listen(opts))
end

local function url(server, path)
  return "ws://127.0.0.1:" .. server.port .. (path or "/")
end

describe("connections over loopback", function()
  local servers = {}
  local function serve(opts)
    local s = echo_server(opts)
    servers[#servers + 1] = s
    return s
  end
  after_each(function()
    for _, s in ipairs(servers) do s:close(1) end
    servers = {}
  end)

  it("resolves a host name without blocking the loop", function()
    local s = serve()
    -- the blocking resolver must not be used for names
    local blocking = core.resolve
    core.resolve = function(host, ...)
      assert(host:match("^[%d.:]+$"), "blocking lookup of " .. host)
      return blocking(host, ...)
    end
    local conn, turns
    local ok, err = pcall(run, function()
      local t = ws.spawn(function()
        conn = assert(ws.connect("ws://localhost:" .. s.port .. "/",
          { timeout = 5 }))
      end)
      -- the connecting task waits for the lookup while the loop runs
      turns = 0
      while not t.done and turns < 10000 do
        turns = turns + 1
        ws.sleep(0)
      end
    end)
    core.resolve = blocking
    assert(ok, err)
    assert.is_true(turns >= 1)
    assert.are.equal("open", conn.state)
    assert.is_true(conn:send("by name"))
    assert.are.same({ "by name", "text" }, { conn:receive(5) })
    conn:close()
  end)

  it("echoes text and binary messages", function()
    local s = serve()
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    assert.is_true(conn:send("héllo"))
    assert.are.same({ "héllo", "text" }, { conn:receive(5) })
    assert.is_true(conn:send("\0\255", "binary"))
    assert.are.same({ "\0\255", "binary" }, { conn:receive(5) })
    local ev = conn:close()
    assert.are.same({ 1000, "normal", true, "local" },
      { ev.code, ev.name, ev.clean, ev.initiator })
    assert.are.equal("closed", conn.state)
  end)

  it("connects over IPv6 loopback", function()
    local s = serve{ host = "::1" }
    local conn, err = ws.connect("ws://[::1]:" .. s.port .. "/", { timeout = 5 })
    if not conn and err:match("address") then
      pending("no IPv6 loopback here")
      return
    end
    assert.is_true(conn:send("six"))
    assert.are.equal("six", (conn:receive(5)))
    conn:close()
  end)

  it("gives the request to the handler and negotiates a subprotocol", function()
    local seen
    local s = serve{ protocols = { "v2", "v1" }, handler = function(conn, req)
      seen = { req.path, req.headers["x-token"], conn.protocol }
      conn:send("ok")
      conn:receive(5)
    end }
    local conn = assert(ws.connect(url(s, "/feed?x=1"), {
      protocols = { "v1", "v2" }, headers = { ["X-Token"] = "abc" },
      timeout = 5 }))
    assert.are.equal("v2", conn.protocol)
    -- "ok" may arrive in the same read as the 101; receive must return it
    -- at once, not when its timeout runs out
    local t0 = ws.now()
    assert.are.equal("ok", (conn:receive(3)))
    assert.is_true(ws.now() - t0 < 2.5, "receive waited for its timeout")
    assert.are.same({ "/feed?x=1", "abc", "v2" }, seen)
    conn:close()
  end)

  it("reports the server's close code and reason as a remote close", function()
    local s = serve{ handler = function(conn)
      conn:receive(5)
      conn:close("going_away", "restarting")
    end }
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    conn:send("bye?")
    local data, err, ev = conn:receive(5)
    assert.is_nil(data)
    assert.are.equal("closed", err)
    assert.are.same({ code = 1001, name = "going_away", reason = "restarting",
      clean = true, initiator = "remote", sent = { code = 1001, reason = "" },
      received = { code = 1001, reason = "restarting" }, unsent = {} }, ev)
    assert.are.equal(ev, conn.close_event)
  end)

  it("tells the server our close code and reason", function()
    local got
    local s = serve{ handler = function(conn)
      local _, _, ev = conn:receive(5)
      got = ev
    end }
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    local ev = conn:close(4000, "done here")
    assert.are.same({ 4000, "done here", true, "local" },
      { ev.code, ev.reason, ev.clean, ev.initiator })
    run(function() while not got do ws.sleep(0.01) end end)
    assert.are.same({ 4000, "done here", true, "remote" },
      { got.code, got.reason, got.clean, got.initiator })
  end)

  it("calls close handlers by name", function()
    local s = serve{ handler = function(conn)
      conn:receive(5)
      conn:close("try_again_later")
    end }
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    local calls = {}
    conn:on("close", function(_, ev) calls[#calls + 1] = "close " .. ev.code end)
    conn:on("close:try_again_later", function(_, ev)
      calls[#calls + 1] = "named " .. ev.name
    end)
    conn:on("close:normal", function() calls[#calls + 1] = "wrong" end)
    conn:send("x")
    local data, err = conn:receive(5)
    assert.are.same({ nil, "closed" }, { data, err })
    assert.are.same({ "close 1013", "named try_again_later" }, calls)
  end)

  it("calls a close handler named for a defined application code",
    function()
      ws.codes.define(4190, "spec_kicked", "fatal")
      local s = serve{ handler = function(conn)
        conn:receive(5)
        conn:close(4190, "out")
      end }
      local conn = assert(ws.connect(url(s), { timeout = 5 }))
      local got
      conn:on("close:spec_kicked", function(_, ev) got = ev end)
      conn:send("x")
      conn:receive(5)
      assert.are.same({ 4190, "spec_kicked", "out" },
        { got.code, got.name, got.reason })
    end)

  it("hands messages to an on('message') handler", function()
    local s = serve()
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    local got = {}
    conn:on("message", function(_, data, kind) got[#got + 1] = data .. ":" .. kind end)
    conn:send("a")
    conn:send("b", "binary")
    run(function() while #got < 2 do ws.sleep(0.01) end end)
    assert.are.same({ "a:text", "b:binary" }, got)
    conn:close()
  end)

  it("lets a message handler close the connection cleanly", function()
    local s = serve()
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    local closed
    conn:on("message", function(c, data)
      closed = c:close("normal", "got " .. data)
    end)
    conn:send("it")
    run(function() while not closed do ws.sleep(0.01) end end, 3)
    assert.are.same({ 1000, "got it", true, "local" },
      { closed.code, closed.reason, closed.clean, closed.initiator })
    assert.is_true(closed.received ~= nil)
  end)

  it("refuses receive and messages once messages go to a handler; wait "
    .. "returns the close event", function()
      local s = serve()
      local conn = assert(ws.connect(url(s), { timeout = 5 }))
      local got = {}
      conn:on("message", function(c, data)
        got[#got + 1] = data
        c:close("normal", "done")
      end)
      local msg = "cannot receive: this connection's messages go to its "
        .. "on(\"message\") handlers (wait for the close with conn:wait())"
      local ok, err = pcall(conn.receive, conn, 1)
      assert.are.same({ false, msg }, { ok, err })
      ok, err = pcall(conn.messages, conn)
      assert.are.same({ false, (msg:gsub("^cannot receive", "cannot "
        .. "iterate messages")) }, { ok, err })
      conn:send("one")
      local ev = conn:wait(5)
      assert.are.same({ "one" }, got)
      assert.are.same({ 1000, "done", true }, { ev.code, ev.reason, ev.clean })
      assert.are.equal(ev, conn:wait())
    end)

  it("refuses a message handler while a receive waits", function()
    local s = serve()
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    local ok, err
    run(function()
      local t = ws.spawn(function() return conn:receive(2) end)
      ws.sleep(0.05)
      ok, err = pcall(conn.on, conn, "message", print)
      conn:send("after")
      ws.sleep(0.2)
      assert.are.same({ "after", "text" }, { t.results[1], t.results[2] })
    end)
    assert.are.same({ false, "cannot add a message handler: a receive() is "
      .. "waiting on this connection" }, { ok, err })
    conn:close()
  end)

  it("times out wait, and hands a handler's error to error handlers",
    function()
      local s = serve()
      local conn = assert(ws.connect(url(s), { timeout = 5 }))
      local errors = {}
      conn:on("message", function() error("boom", 0) end)
      conn:on("error", function(c, msg) errors[#errors + 1] = { c, msg } end)
      assert.are.same({ nil, "timeout" }, { conn:wait(0.05) })
      conn:send("x")
      run(function() while #errors == 0 do ws.sleep(0.01) end end, 3)
      assert.are.same({ { conn, "handler: boom" } }, errors)
      conn:close()
    end)

  it("reports a handler's error through ws.loop.on_error without error "
    .. "handlers", function()
      local loop = require "ws.loop"
      local s = serve()
      local conn = assert(ws.connect(url(s), { timeout = 5 }))
      local errors = {}
      local saved = loop.on_error
      loop.on_error = function(msg) errors[#errors + 1] = msg end
      conn:on("message", function() error("boom", 0) end)
      conn:send("x")
      local ok, err = pcall(run, function()
        while #errors == 0 do ws.sleep(0.01) end
      end, 3)
      loop.on_error = saved
      assert(ok, err)
      assert.are.same({ "handler: boom" }, errors)
      conn:close()
    end)

  it("hands a server's handler errors to server:on(\"error\")", function()
    local errors = {}
    local s = serve{ handler = function(conn)
      conn:on("message", function(_, data)
        if data == "raise in message" then error("in message", 0) end
      end)
      assert(conn:wait(5))
      error("in handler", 0)
    end }
    s:on("error", function(srv, msg, conn)
      errors[#errors + 1] = { srv == s, msg, conn ~= nil }
    end)
    local c = assert(ws.connect(url(s), { timeout = 5 }))
    c:send("raise in message")
    run(function() while #errors == 0 do ws.sleep(0.01) end end, 3)
    local ev = c:close()
    run(function() while #errors < 2 do ws.sleep(0.01) end end, 3)
    assert.are.same({ { true, "handler: in message", true },
      { true, "handler: in handler", true } }, errors)
    assert.are.equal(1000, ev.code)
    assert.are.equal("bad argument #1 to 'on' (unknown event close (a "
      .. "server has \"error\"))", select(2, pcall(s.on, s, "close", print)))
  end)

  it("times out a receive with nothing to read", function()
    local s = serve()
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    assert.are.same({ nil, "timeout" }, { conn:receive(0.05) })
    assert.are.equal("open", conn.state)
    conn:close()
  end)

  it("measures a ping's round trip", function()
    local s = serve()
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    local rtt = conn:ping("x", 5)
    assert.is_number(rtt)
    assert.is_true(rtt >= 0 and rtt < 5)
    conn:close()
  end)

  it("shows the peer a 1006 when we abort", function()
    local got
    local s = serve{ handler = function(conn)
      local _, _, ev = conn:receive(5)
      got = ev
    end }
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    run(function() ws.sleep(0.05) end)
    local ev = conn:abort()
    assert.are.same({ 1006, "abnormal", false, "local", "aborted" },
      { ev.code, ev.name, ev.clean, ev.initiator, ev.error })
    run(function() while not got do ws.sleep(0.01) end end)
    assert.are.same({ 1006, "abnormal", false, "transport", "eof" },
      { got.code, got.name, got.clean, got.initiator, got.error })
  end)

  it("refuses to close with 1006, naming the code", function()
    local s = serve()
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    assert.has_error(function() conn:close(1006) end,
      "bad argument #1 to 'close' (close code 1006 (abnormal) may not be sent)")
    assert.are.equal("open", conn.state)
    conn:close()
  end)

  it("refuses to send after closing", function()
    local s = serve()
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    conn:close()
    assert.are.same({ nil, "closed" }, { conn:send("late") })
  end)

  it("closes connections with 1001 when the server closes", function()
    local s = serve{ handler = function(conn) conn:receive(30) end }
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    run(function() ws.sleep(0.05) end)
    s:close(2)
    local _, err, ev = conn:receive(5)
    assert.are.equal("closed", err)
    assert.are.same({ 1001, "going_away", "remote" },
      { ev.code, ev.name, ev.initiator })
  end)

  it("fails the connection with 1009 on a message over the limit", function()
    local got
    local s = serve{ max_message_size = 1000, handler = function(conn)
      local _, _, ev = conn:receive(5)
      got = ev
    end }
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    conn:send(("x"):rep(1001))
    local _, _, ev = conn:receive(5)
    assert.are.same({ 1009, "message_too_big", "remote" },
      { ev.code, ev.name, ev.initiator })
    assert.are.same({ 1009, "local", "protocol:message_too_big" },
      { got.code, got.initiator, got.error })
  end)

  it("keeps messages that arrived before the close", function()
    local s = serve{ handler = function(conn)
      conn:send("one")
      conn:send("two")
      conn:close("normal")
    end }
    local conn = assert(ws.connect(url(s), { timeout = 5 }))
    run(function() ws.sleep(0.1) end)
    assert.are.equal("one", (conn:receive(5)))
    assert.are.equal("two", (conn:receive(5)))
    assert.are.equal("closed", select(2, conn:receive(5)))
  end)
end)

describe("connection failures", function()
  it("reports a refused connection as 1006 'refused'", function()
    -- a port that was just free
    local l = core.tcp_listen("127.0.0.1", 0)
    local port = l:port()
    l:close()
    local conn, err, ev = ws.connect("ws://127.0.0.1:" .. port .. "/",
      { timeout = 5 })
    assert.is_nil(conn)
    assert.matches("refused", err)
    assert.are.same({ 1006, "abnormal", "refused", false },
      { ev.code, ev.name, ev.error, ev.clean })
  end)

  it("reports a name that does not resolve as 'dns'", function()
    local conn, _, ev = ws.connect("ws://no-such-host.invalid/", { timeout = 5 })
    assert.is_nil(conn)
    assert.are.same({ 1006, "dns" }, { ev.code, ev.error })
  end)

  it("reports a server that never answers as 'timeout'", function()
    local l = core.tcp_listen("127.0.0.1", 0)
    local conn, _, ev = ws.connect("ws://127.0.0.1:" .. l:port() .. "/",
      { timeout = 0.3 })
    l:close()
    assert.is_nil(conn)
    assert.are.same({ 1006, "timeout" }, { ev.code, ev.error })
  end)

  it("reports an HTTP refusal with its status", function()
    local s = assert(ws.listen{ port = 0, handler = function() end,
      authorize = function(req)
        return false, 401, { ["WWW-Authenticate"] = "Bearer" }
      end })
    local conn, err, ev = ws.connect("ws://127.0.0.1:" .. s.port .. "/",
      { timeout = 5 })
    s:close()
    assert.is_nil(conn)
    assert.are.equal("server answered HTTP 401 instead of 101", err)
    assert.are.same({ 1006, "http", 401 }, { ev.code, ev.error, ev.http_status })
  end)

  it("answers 503 past max_connections", function()
    local s = assert(ws.listen{ port = 0, max_connections = 1,
      handler = function(conn) conn:receive(5) end })
    local first = assert(ws.connect("ws://127.0.0.1:" .. s.port .. "/"))
    local conn, _, ev = ws.connect("ws://127.0.0.1:" .. s.port .. "/",
      { timeout = 5 })
    assert.is_nil(conn)
    assert.are.equal(503, ev.http_status)
    first:close()
    s:close()
  end)

  it("drops a client that does not finish the handshake in time", function()
    local s = assert(ws.listen{ port = 0, handshake_timeout = 0.2,
      handler = function() end })
    local sock = assert(core.tcp_connect("127.0.0.1", s.port))
    local t0 = ws.now()
    local result
    run(function()
      local loop = require "ws.loop"
      loop.wait_fd(sock:fd(), "w", ws.now() + 2)
      sock:write("GET / HTTP/1.1\r\n")
      while ws.now() - t0 < 3 do
        local data, err = sock:read()
        if not data and err ~= "wantread" then result = err break end
        loop.wait_fd(sock:fd(), "r", ws.now() + 0.1)
      end
    end)
    require("ws.loop").forget_fd(sock:fd())
    sock:close()
    s:close()
    assert.are.equal("eof", result)
    assert.is_true(ws.now() - t0 >= 0.2)
  end)

  it("raises for an unknown connect option, naming it", function()
    assert.has_error(function() ws.connect("ws://127.0.0.1:1/", { tiemout = 1 }) end,
      "bad argument #2 to 'connect' (unknown option 'tiemout')")
  end)

  it("raises for a URL that is not ws or wss", function()
    assert.has_error(function() ws.connect("http://x/") end,
      "bad argument #1 to 'connect' (unsupported scheme 'http' (ws, wss, ws+unix or wss+unix expected))")
  end)
end)

describe("writes at the end of the loop's turn", function()
  local s
  before_each(function() s = echo_server() end)
  after_each(function() s:close(1) end)

  it("writes what a task sends in a turn together, once the turn's tasks "
    .. "ran", function()
    run(function()
      local conn = assert(ws.connect(url(s)))
      assert.is_true(conn:send("one"))
      assert.is_true(conn:send("two"))
      -- both frames wait: 2 header bytes, a 4-byte mask and 3 bytes each
      assert.are.equal(2 * 9, conn:buffered_amount())
      ws.sleep(0)
      assert.are.equal(0, conn:buffered_amount())
      assert.are.same({ "one", "text" }, { conn:receive(5) })
      assert.are.same({ "two", "text" }, { conn:receive(5) })
      conn:close()
    end)
  end)

  it("writes at once from the main thread", function()
    local conn = assert(ws.connect(url(s)))
    assert.is_true(conn:send("now"))
    assert.are.equal(0, conn:buffered_amount())
    assert.are.same({ "now", "text" }, { conn:receive(5) })
    conn:close()
  end)

  it("writes at once what passes 64 KiB", function()
    run(function()
      local conn = assert(ws.connect(url(s)))
      local big = ("x"):rep(70000)
      assert.is_true(conn:send(big, "binary"))
      -- 70000 bytes and a 14-byte header: the socket took some already
      assert.is_true(conn:buffered_amount() < 70014)
      assert.are.same({ big, "binary" }, { conn:receive(5) })
      conn:close()
    end)
  end)
end)

describe("ws.loop.defer", function()
  local loop = require "ws.loop"

  it("calls back once the tasks ready in the turn have run", function()
    local log = {}
    run(function()
      local a = ws.spawn(function()
        log[#log + 1] = "a"
        assert.is_true(loop.defer(function(x) log[#log + 1] = x end, "late"))
        ws.sleep(0)
        log[#log + 1] = "a again"
      end)
      ws.spawn(function() log[#log + 1] = "b" end)
      for _ = 1, 10 do
        if a.done then break end
        ws.sleep(0)
      end
    end)
    assert.are.same({ "a", "b", "late", "a again" }, log)
  end)

  it("defers nothing outside a turn of the loop", function()
    local called = false
    assert.is_false(loop.defer(function() called = true end))
    ws.step(0)
    assert.is_false(called)
  end)

  it("reports an error of a deferred call to on_error", function()
    local saved, errors = loop.on_error, {}
    loop.on_error = function(m) errors[#errors + 1] = m end
    local ok, err = pcall(run, function()
      loop.defer(function() error("deferred boom", 0) end)
      ws.sleep(0)
    end)
    loop.on_error = saved
    assert(ok, err)
    assert.are.same({ "deferred boom" }, errors)
  end)
end)

describe("back-pressure", function()
  it("makes send wait instead of buffering without bound", function()
    -- a raw TCP client that completes the handshake and then never reads
    local max_seen, sent = 0, 0
    local s = assert(ws.listen{ port = 0, max_buffered = 65536,
      handler = function(conn)
        local chunk = ("z"):rep(16384)
        while sent < 2000 do
          if not conn:send(chunk, "binary") then break end
          sent = sent + 1
          local b = conn:buffered_amount()
          if b > max_seen then max_seen = b end
        end
      end })
    local hs = require "ws.handshake"
    local sock = assert(core.tcp_connect("127.0.0.1", s.port))
    local loop = require "ws.loop"
    run(function()
      loop.wait_fd(sock:fd(), "w", ws.now() + 2)
      sock:write((hs.request{ host = "127.0.0.1", path = "/" }))
      ws.sleep(0.5)
    end)
    -- the handler is stuck in send: far fewer than 2000 chunks went out
    assert.is_true(sent < 2000)
    assert.is_true(max_seen <= 65536 + 16384 + 14)
    loop.forget_fd(sock:fd())
    sock:close()
    s:close(1)
  end)
end)

describe("tearing down", function()
  it("closes the socket when the peer closes while a large send waits",
    function()
      -- a server that answers the handshake, sends 1009 and stops reading,
      -- while our writer task still waits to write 16 MiB
      local loop = require "ws.loop"
      local errors = {}
      local saved = loop.on_error
      loop.on_error = function(msg) errors[#errors + 1] = msg end
      local l = assert(core.tcp_listen("127.0.0.1", 0))
      local peer_done = false
      ws.spawn(function()
        local s
        repeat
          s = l:accept()
          if not s then loop.wait_fd(l:fd(), "r", ws.now() + 5) end
        until s
        local buf = ""
        for _ = 1, 100 do
          local d, err = s:read(65536)
          if d then buf = buf .. d
          elseif err == "wantread" then loop.wait_fd(s:fd(), "r", ws.now() + 1)
          else break end
          local req = ws.handshake.parse_request(buf)
          if req then
            s:write(ws.handshake.response{ key = req.key })
            break
          end
        end
        ws.sleep(0.2)
        s:write(ws.protocol.new{ role = "server" }:close(1009, "too big"))
        ws.sleep(3)
        loop.forget_fd(s:fd())
        s:close()
        peer_done = true
      end)
      local c = assert(ws.connect("ws://127.0.0.1:" .. l:port() .. "/"))
      local ok, err = c:send(("x"):rep(16 * 2 ^ 20), "binary")
      run(function() while not peer_done do ws.sleep(0.05) end end, 10)
      loop.on_error = saved
      l:close()
      -- accepted, never written in full: listed in unsent
      assert.are.same({ true }, { ok, err })
      assert.are.same({ 1009, "remote" }, { c.close_event.code,
        c.close_event.initiator })
      assert.are.equal(1, #c.close_event.unsent)
      assert.are.equal(16 * 2 ^ 20, #c.close_event.unsent[1].data)
      assert.are.same({}, errors)
      assert.are.equal("closed", select(2, c._t.sock:read(1)))
    end)
end)

describe("many clients", function()
  it("serves 200 concurrent clients, checking every message", function()
    local s = echo_server()
    local ok_count, bad = 0, 0
    local tasks = {}
    for c = 1, 200 do
      tasks[c] = ws.spawn(function()
        local conn = assert(ws.connect("ws://127.0.0.1:" .. s.port .. "/",
          { timeout = 10 }))
        for m = 1, 10 do
          local msg = ("client %d message %d %s"):format(c, m, ("."):rep(m * 7))
          conn:send(msg)
          local echo = conn:receive(10)
          if echo == msg then ok_count = ok_count + 1 else bad = bad + 1 end
        end
        conn:close()
      end)
    end
    local deadline = ws.now() + 60
    local function all_done()
      for _, t in ipairs(tasks) do if not t.done then return false end end
      return true
    end
    while not all_done() and ws.now() < deadline do ws.step(0.05) end
    s:close(2)
    assert.are.same({ 2000, 0 }, { ok_count, bad })
  end)
end)
