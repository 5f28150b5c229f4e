-- The one connection class (ws.connection) over its transports: the
-- in-memory pipe, handler names, the inbox's bound in bytes, and a valid
-- message that arrives together with a protocol violation.
local ws = require "ws"
local core = require "ws.core"
local loop = require "ws.loop"
local Conn = require "ws.connection"
local memory = require "ws.transport.memory"
local options = require "ws.options"
local drive = require "support.drive"
local wire = require "support.wire"
local raw_peer = require "support.raw_peer"

local run = drive.run

local function pair(copts, sopts)
  local a, b = memory.pair()
  local c = Conn.new(a, "client", options.connection(copts or {}, 1))
  local s = Conn.new(b, "server", options.connection(sopts or {}, 1))
  return c, s
end

local function fields(ev)
  return { ev.code, ev.name, ev.reason, ev.clean, ev.initiator, ev.error }
end

-- The message of an error raised by fn, without its position.
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("a connection over the memory transport", function()
  it("hands an error raised in its background task to its error handlers",
    function()
      local a = memory.pair()
      local c = Conn.new(a, "client", options.connection({}, 1))
      local errors = {}
      c:on("error", function(conn, msg)
        errors[#errors + 1] = { conn == c, msg }
      end)
      a.read = function() error("transport broke", 0) end
      a.feed = nil
      run(function() ws.sleep(0.05) end)
      assert.are.equal(1, #errors)
      assert.is_true(errors[1][1])
      assert.matches("^connection task: transport broke\nstack traceback:",
        errors[1][2])
    end)

  it("keeps receive and on(\"message\") apart, and waits for the close",
    function()
      local c, s = pair()
      s:on("message", function(conn, data) conn:close(4000, data) end)
      assert.are.equal("cannot receive: this connection's messages go to "
        .. "its on(\"message\") handlers (wait for the close with "
        .. "conn:wait())", raised(function() s:receive(1) end))
      local cev, sev
      run(function()
        ws.spawn(function() sev = s:wait(2) end)
        assert(c:send("bye"))
        local _, err, ev = c:receive(2)
        assert.are.equal("closed", err)
        cev = ev
        while not sev do ws.sleep(0.01) end
      end)
      assert.are.same({ 4000, nil, "bye", true, "remote", nil }, fields(cev))
      assert.are.same({ 4000, nil, "bye", true, "local", nil }, fields(sev))
    end)

  it("echoes, pings and closes with the closing handshake", function()
    local c, s = pair()
    s:on("message", function(conn, data, kind) conn:send(data, kind) end)
    local got = {}
    run(function()
      assert(c:send("hello"))
      assert(c:send("\0\1", "binary"))
      got[1] = { c:receive(2) }
      got[2] = { c:receive(2) }
      got[3] = type(c:ping("p", 2))
      got[4] = c:close(4001, "bye")
    end)
    assert.are.same({ "hello", "text" }, got[1])
    assert.are.same({ "\0\1", "binary" }, got[2])
    assert.are.equal("number", got[3])
    assert.are.same({ 4001, nil, "bye", true, "local", nil }, fields(got[4]))
    drive.until_true(function() return s.close_event ~= nil end, 2)
    assert.are.same({ 4001, nil, "bye", true, "remote", nil },
      fields(s.close_event))
    assert.are.same({ code = 4001, reason = "bye" }, s.close_event.received)
  end)

  it("reports abort as 1006 'aborted' here and 1006 'reset' at the peer",
      function()
    local c, s = pair()
    local ev = c:abort()
    assert.are.same({ 1006, "abnormal", "", false, "local", "aborted" },
      fields(ev))
    drive.until_true(function() return s.close_event ~= nil end, 2)
    assert.are.same({ 1006, "abnormal", "", false, "transport", "reset" },
      fields(s.close_event))
  end)

  it("reports a close timeout as 1006 'close_timeout' with what it sent",
      function()
    local a, b = memory.pair()
    local c = Conn.new(a, "client", options.connection({}, 1))
    local ev = run(function() return c:close(1001, "away", 0.2) end)
    assert.are.same({ 1006, "abnormal", "", false, "local", "close_timeout" },
      fields(ev))
    assert.are.same({ code = 1001, reason = "away" }, ev.sent)
    assert.is_truthy(b) -- the other end never answered
  end)
end)

describe("close handlers", function()
  it("refuses close:<name> for a name no code has", function()
    local c = pair()
    assert.are.equal("bad argument #1 to 'on' (unknown close code name "
      .. "'protocl_error' (see ws.codes; name application codes with "
      .. "ws.codes.define))",
      raised(function() c:on("close:protocl_error", print) end))
    c:abort()
  end)

  it("refuses close:<code> for codes that are never reported", function()
    local c = pair()
    for _, code in ipairs({ "999", "1016", "2999", "5000" }) do
      assert.are.equal("bad argument #1 to 'on' (close code " .. code
        .. " is never reported)",
        raised(function() c:on("close:" .. code, print) end))
    end
    c:abort()
  end)

  it("calls close:<code> for an application code without a name", function()
    local c, s = pair()
    local seen = {}
    c:on("close:4321", function(conn, ev)
      seen[#seen + 1] = { conn == c, ev.code, ev.name, ev.reason }
    end)
    run(function() s:close(4321, "custom") end)
    drive.until_true(function() return c.close_event ~= nil end, 2)
    assert.are.same({ { true, 4321, nil, "custom" } }, seen)
  end)

  it("calls close, close:<name> and close:<code> for a registry code",
      function()
    local c, s = pair()
    local order = {}
    c:on("close:1001", function() order[#order + 1] = "1001" end)
    c:on("close:going_away", function() order[#order + 1] = "going_away" end)
    c:on("close", function() order[#order + 1] = "close" end)
    run(function() s:close("going_away") end)
    drive.until_true(function() return c.close_event ~= nil end, 2)
    assert.are.same({ "close", "going_away", "1001" }, order)
  end)
end)

describe("a valid message followed by a violation in the same read", function()
  it("is echoed by a server before its close frame", function()
    local s = assert(ws.listen{ port = 0, handler = function(conn)
      for data, kind in conn:messages() do conn:send(data, kind) end
    end })
    local request, key = ws.handshake.request{ host = "127.0.0.1" }
    assert(key)
    local got = drive.raw_exchange(s.port, function(sock)
      sock:write(request)
      ws.sleep(0.2) -- the answer first, so the frames come in a read of their own
      sock:write(wire.frame{ payload = "first", key = wire.KEY }
        .. wire.frame{ payload = "bad", rsv = 2, key = wire.KEY })
    end, 3)
    s:close(1)
    local frames = wire.parse(got:match("\r\n\r\n(.*)$"))
    assert.are.equal(2, #frames)
    assert.are.same({ 1, "first" }, { frames[1].opcode, frames[1].payload })
    assert.are.same({ 8, wire.close_payload(1002, "protocol:rsv_bits") },
      { frames[2].opcode, frames[2].payload })
  end)

  it("is echoed by a client before its close frame", function()
    local peer = raw_peer.start(function(p)
      p:write(p.frame(1, "first") .. wire.frame{ payload = "x", opcode = 3 })
      p:read_for(1)
    end)
    local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/"))
    local ev = run(function()
      for data, kind in conn:messages() do conn:send(data, kind) end
      return conn.close_event
    end)
    peer:wait()
    assert.are.same({ 1002, "protocol:reserved_opcode" }, { ev.code, ev.error })
    local frames = wire.parse(peer.received)
    assert.are.equal(2, #frames)
    assert.are.same({ 1, "first" }, { frames[1].opcode, frames[1].payload })
    assert.are.same({ 8, wire.close_payload(1002, "protocol:reserved_opcode") },
      { frames[2].opcode, frames[2].payload })
  end)

  it("reaches an on(\"message\") handler before the close frame", function()
    local peer = raw_peer.start(function(p)
      p:write(p.frame(2, "one") .. p.frame(2, "two") .. p.frame(9, ("p"):rep(126)))
      p:read_for(1)
    end)
    local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/"))
    conn:on("message", function(c, data, kind) c:send(data, kind) end)
    peer:wait()
    local frames = wire.parse(peer.received)
    local got = {}
    for i, f in ipairs(frames) do got[i] = f.opcode .. " " .. f.payload end
    assert.are.same({ "2 one", "2 two",
      "8 " .. wire.close_payload(1002, "protocol:control_too_long") }, got)
  end)
end)

-- Resident memory of a process in bytes (Linux).
local function rss(pid)
  local f = assert(io.open("/proc/" .. pid .. "/status"))
  local kb = f:read("*a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb) * 1024
end

-- examples/echo_server.lua (default options) in a process of its own, run
-- by this Lua with this ws.core; returns its pid and port.
local function echo_server_process()
  local lua = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
  local out = os.tmpname()
  local cmd = ("env -u LD_PRELOAD -u ASAN_OPTIONS LUA_PATH=%q LUA_CPATH=%q "
    .. "%s examples/echo_server.lua 0 >%s 2>&1 </dev/null & echo $!")
    :format(package.path, package.cpath, lua, out)
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("*l"))
  p:close()
  local port
  drive.until_true(function()
    local f = io.open(out)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    port = tonumber(text:match("PORT (%d+)"))
    return port ~= nil
  end, 10)
  os.remove(out)
  return pid, port
end

describe("the inbox", function()
  -- The server process must be a plain build: under ASan (make test's
  -- first pass) ws.core is built with the sanitizer, which a child
  -- without the preloaded runtime cannot load; the LuaJIT and 5.3 passes
  -- run this.
  local asan = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true)
  local it_plain = asan and pending or it

  it_plain("is bounded in bytes: an echo server with default options whose "
      .. "peer sends 256 x 1 MiB and never reads grows by less than 32 MiB",
      function()
    local pid, port = echo_server_process()
    local rss0 = rss(pid)
    local sock = assert(core.tcp_connect("127.0.0.1", port))
    local frame = wire.frame{ opcode = 2, payload = ("m"):rep(2 ^ 20),
      key = wire.KEY }
    local written = 0
    local ok, err = pcall(run, function()
      local request = ws.handshake.request{ host = "127.0.0.1" }
      loop.wait_fd(sock:fd(), "w", ws.now() + 2, sock)
      sock:write(request)
      local deadline = ws.now() + 8
      for _ = 1, 256 do
        local i = 1
        while i <= #frame do
          local n, werr = sock:write(frame, i)
          if n then
            i = i + n
            written = written + n
          elseif werr == "wantwrite" then
            -- stuck for a second: the server stopped reading
            if not loop.wait_fd(sock:fd(), "w", math.min(deadline,
                ws.now() + 1), sock) then break end
          else
            error(werr)
          end
        end
        if i <= #frame then break end
      end
    end, 15)
    local grown = rss(pid) - rss0
    loop.forget_fd(sock:fd())
    sock:close()
    os.execute("kill " .. pid)
    assert(ok, err)
    -- the server read several messages, then stopped
    assert.is_true(written > 4 * 2 ^ 20, written .. " bytes written")
    assert.is_true(written < 64 * 2 ^ 20, written .. " bytes written")
    assert.is_true(grown < 32 * 2 ^ 20, grown .. " bytes more RSS")
  end)
end)
