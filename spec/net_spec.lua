-- The transport under ws.core: name resolution, non-blocking TCP over
-- IPv4 and IPv6, TLS, the poller and its timers, and pump/flush feeding
-- protocol engines. Real sockets, loopback only; every wait is bounded.
local core = require "ws.core"

local NOFD, NOTIMER = {}, {}
local idle = core.poller() -- a poller with nothing in it: a bounded sleep

local function sleep(s)
  idle:wait(s, NOFD, NOTIMER)
end

--- Call fn until its first result is truthy; return its results. Fails
-- after `timeout` seconds (default 5) or 20000 tries.
local function eventually(what, fn, timeout)
  local deadline = core.now() + (timeout or 5)
  for _ = 1, 20000 do
    local a, b, c, d = fn()
    if a then return a, b, c, d end
    if core.now() > deadline then break end
    sleep(0.001)
  end
  error("timed out waiting for " .. what, 2)
end

--- Wait (bounded) until the poller reports fd; returns its flags.
local function ready(p, fd, timeout)
  local out, timers = {}, {}
  local deadline = core.now() + (timeout or 5)
  for _ = 1, 1000 do
    local n = p:wait(math.max(0, deadline - core.now()), out, timers)
    for i = 1, n do
      if out[2 * i - 1] == fd then return out[2 * i] end
    end
    if core.now() >= deadline then break end
  end
  error("fd " .. fd .. " never became ready", 2)
end

--- A connected pair over loopback: client sock, server sock, and the
-- address the client connected to.
local function pair(host)
  host = host or "127.0.0.1"
  local l = assert(core.tcp_listen(host, 0))
  local c = assert(core.tcp_connect(host, l:port()))
  local s = eventually("accept", function() return l:accept() end)
  eventually("connect", function() return c:connected() end)
  l:close()
  return c, s
end

--- Read exactly n bytes (bounded).
local function read_n(sock, n)
  local parts, got = {}, 0
  eventually("reading " .. n .. " bytes", function()
    local data, err, msg = sock:read(n - got)
    if data then
      parts[#parts + 1] = data
      got = got + #data
    elseif err ~= "wantread" then
      error("read failed: " .. tostring(err) .. " " .. tostring(msg))
    end
    return got == n
  end)
  return table.concat(parts)
end

local function write_all(sock, data)
  local pos = 1
  eventually("writing " .. #data .. " bytes", function()
    local n, err, msg = sock:write(data, pos)
    if n then
      pos = pos + n
    elseif err ~= "wantwrite" then
      error("write failed: " .. tostring(err) .. " " .. tostring(msg))
    end
    return pos > #data
  end)
end

--- The first read result other than wantread, as a table.
local function read_status(sock)
  return eventually("a read result", function()
    local d, e, m = sock:read()
    if e ~= "wantread" then return { d, e, m } end
  end)
end

-- Hosts with IPv6 switched off cannot run the ::1 cases; say so instead.
local it6 = it
do
  local l = core.tcp_listen("::1", 0)
  if l then
    l:close()
  else
    it6 = function(name) pending(name .. " (no IPv6 loopback here)") end
  end
end

describe("core.now", function()
  it("returns monotonic seconds that advance across a sleep", function()
    local t0 = core.now()
    sleep(0.02)
    local dt = core.now() - t0
    assert.is_true(dt >= 0.019 and dt < 2, "elapsed " .. dt)
  end)
end)

describe("core.resolve", function()
  it("resolves 127.0.0.1 to itself", function()
    assert.are.same({ { family = "inet", addr = "127.0.0.1", port = 80 } },
      core.resolve("127.0.0.1", 80))
  end)

  it("resolves ::1 to itself", function()
    assert.are.same({ { family = "inet6", addr = "::1", port = 443 } },
      core.resolve("::1", 443))
  end)

  it("resolves localhost to loopback addresses, 127.0.0.1 among them",
    function()
      local addrs = assert(core.resolve("localhost", 8080))
      local seen = {}
      for _, a in ipairs(addrs) do
        assert.are.equal(8080, a.port)
        if a.family == "inet" then
          assert.are.equal("127.0.0.1", a.addr)
        else
          assert.are.same({ "inet6", "::1" }, { a.family, a.addr })
        end
        seen[a.addr] = (seen[a.addr] or 0) + 1
      end
      assert.are.equal(1, seen["127.0.0.1"])
      assert.is_true((seen["::1"] or 0) <= 1) -- no duplicates
    end)

  it("keeps only the asked-for family", function()
    assert.are.same({ { family = "inet", addr = "127.0.0.1", port = 1 } },
      core.resolve("localhost", 1, "inet"))
    local r, err = core.resolve("127.0.0.1", 1, "inet6")
    assert.are.same({ nil, "dns" }, { r, err })
  end)

  it("reports a name that does not exist as a dns failure", function()
    local r, err, msg = core.resolve("no.such.host.invalid", 80)
    assert.is_nil(r)
    assert.are.equal("dns", err)
    assert.are.equal("string", type(msg))
    assert.is_true(#msg > 0)
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.resolve(nil, 80) end)
    assert.has_error(function() core.resolve("localhost", "http") end)
    assert.has_error(function() core.resolve("localhost", 80, "ipx") end)
  end)
end)

describe("core.resolve_start", function()
  it("resolves in a thread: its fd turns readable, then result() answers",
      function()
    local r = assert(core.resolve_start("localhost", 8080, "inet"))
    local p = core.poller()
    assert(p:add(r:fd(), true, false))
    assert.is_truthy(ready(p, r:fd()))
    assert.are.same({ { family = "inet", addr = "127.0.0.1", port = 8080 } },
      r:result())
    -- the same answer as the blocking call
    assert.are.same(core.resolve("localhost", 8080, "inet"), r:result())
    p:close()
    r:close()
  end)

  it("reports a name that does not exist as a dns failure", function()
    local r = assert(core.resolve_start("no.such.host.invalid", 80))
    local res, err, msg = eventually("the lookup", function()
      local a, e, m = r:result()
      if a or e then return true, e, m end
    end, 30)
    assert.is_true(res)
    assert.are.equal("dns", err)
    assert.are.equal(select(3, core.resolve("no.such.host.invalid", 80)),
      msg)
    r:close()
  end)

  it("lets go of a running lookup, and closes idempotently", function()
    for _ = 1, 50 do
      local r = assert(core.resolve_start("localhost", 80))
      r:close()
      r:close()
      assert.has_error(function() r:result() end,
        "attempt to use a closed resolver")
    end
    -- and to the garbage collector
    for _ = 1, 50 do core.resolve_start("localhost", 80) end
    collectgarbage()
    collectgarbage()
    sleep(0.1) -- the threads end on their own; ASan checks for leaks
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.resolve_start(nil, 80) end)
    assert.has_error(function() core.resolve_start("localhost", 70000) end)
    assert.has_error(function() core.resolve_start("localhost", 80, "ipx") end)
  end)
end)

describe("TCP", function()
  it("connects and accepts over IPv4 with an ephemeral port", function()
    local l = assert(core.tcp_listen("127.0.0.1", 0))
    local port = l:port()
    assert.is_true(port > 0 and port < 65536)
    assert.is_true(l:fd() >= 0)
    local c = assert(core.tcp_connect("127.0.0.1", port))
    local s, addr, peer_port = eventually("accept", function()
      return l:accept()
    end)
    assert.are.equal("127.0.0.1", addr)
    assert.are.equal("number", type(peer_port))
    assert.is_true(eventually("connect", function() return c:connected() end))
    assert.are.same({ "127.0.0.1", port }, { c:peer() })
    assert.are.same({ "127.0.0.1", peer_port }, { s:peer() })
    c:close(); s:close(); l:close()
  end)

  it6("connects and accepts over IPv6 with an ephemeral port", function()
    local l = assert(core.tcp_listen("::1", 0))
    local port = l:port()
    assert.is_true(port > 0)
    local c = assert(core.tcp_connect("::1", port))
    local s, addr = eventually("accept", function() return l:accept() end)
    assert.are.equal("::1", addr)
    assert.is_true(eventually("connect", function() return c:connected() end))
    assert.are.same({ "::1", port }, { c:peer() })
    write_all(c, "over six")
    assert.are.equal("over six", read_n(s, 8))
    c:close(); s:close(); l:close()
  end)

  it6("listens on IPv4 and IPv6 wildcards on the same port side by side",
    function()
      local l4 = assert(core.tcp_listen("0.0.0.0", 0))
      local l6 = assert(core.tcp_listen("::", l4:port()))
      assert.are.equal(l4:port(), l6:port())
      l4:close(); l6:close()
    end)

  it("reports a port already in use", function()
    local l = assert(core.tcp_listen("127.0.0.1", 0))
    assert.are.same({ nil, "addrinuse", "Address already in use" },
      { core.tcp_listen("127.0.0.1", l:port()) })
    l:close()
  end)

  it("carries bytes both ways", function()
    local c, s = pair()
    assert.are.equal(5, c:write("hello"))
    assert.are.equal("hello", read_n(s, 5))
    assert.are.equal(6, s:write("world!"))
    assert.are.equal("world!", read_n(c, 6))
    c:close(); s:close()
  end)

  it("writes the i..j slice of a string like string.sub", function()
    local c, s = pair()
    assert.are.equal(3, c:write("abcdef", 2, 4))
    assert.are.equal(2, c:write("abcdef", -2))
    assert.are.equal(0, c:write("abcdef", 5, 4))
    assert.are.equal("bcdef", read_n(s, 5))
    c:close(); s:close()
  end)

  it("reads at most max bytes", function()
    local c, s = pair()
    write_all(c, "0123456789")
    local p = core.poller()
    p:add(s:fd(), true, false)
    ready(p, s:fd())
    p:close()
    local got = eventually("read", function() return s:read(4) end)
    assert.are.equal("0123", got)
    assert.are.equal("456789", read_n(s, 6))
    c:close(); s:close()
  end)

  it("reports wantread when no data is waiting", function()
    local c, s = pair()
    assert.are.same({ nil, "wantread" }, { s:read() })
    c:close(); s:close()
  end)

  it("reports wantread from accept when no connection is waiting", function()
    local l = assert(core.tcp_listen("127.0.0.1", 0))
    assert.are.same({ nil, "wantread" }, { l:accept() })
    l:close()
  end)

  for _, host in ipairs({ "127.0.0.1", "::1" }) do
    local test = host == "::1" and it6 or it
    test("reports a refused connection to a closed port on " .. host, function()
      local l = assert(core.tcp_listen(host, 0))
      local port = l:port()
      l:close()
      local c, err, msg = core.tcp_connect(host, port)
      if c then -- the usual case: the refusal arrives asynchronously
        local p = core.poller()
        assert(p:add(c:fd(), false, true))
        local flags = ready(p, c:fd())
        assert.are.equal(1, math.floor(flags / 4) % 2, "error flag in " .. flags)
        local ok
        ok, err, msg = c:connected()
        assert.is_nil(ok)
        -- remembered: asking again gives the same answer
        assert.are.same({ nil, "refused", "Connection refused" }, { c:connected() })
        p:close()
        c:close()
      end
      assert.are.same({ "refused", "Connection refused" }, { err, msg })
    end)
  end

  it("reports a non-numeric address to tcp_connect", function()
    assert.are.same({ nil, "invalid", "not a numeric address: localhost" },
      { core.tcp_connect("localhost", 80) })
  end)

  it("reads eof after the peer closes", function()
    local c, s = pair()
    s:close()
    assert.are.same({ nil, "eof" }, read_status(c))
    c:close()
  end)

  it("reads eof, not an error, after shutdown of the peer's write side",
    function()
      local c, s = pair()
      write_all(s, "last")
      assert.is_true(s:shutdown())
      assert.are.equal("last", read_n(c, 4))
      local res = read_status(c)
      assert.are.same({ nil, "eof" }, res)
      -- the other direction still works
      write_all(c, "still")
      assert.are.equal("still", read_n(s, 5))
      c:close(); s:close()
    end)

  it("drains what TCP holds until the peer's FIN", function()
    local c, s = pair()
    assert.are.same({ "wantread" }, { c:drain() })
    write_all(s, ("x"):rep(100000))
    local st
    eventually("draining", function()
      st = c:drain()
      return st == "wantread"
    end)
    assert.is_true(s:shutdown())
    eventually("the FIN", function()
      st = c:drain()
      return st == "eof"
    end)
    assert.are.same({ "eof" }, { c:drain() })
    c:close()
    local a, b = c:drain()
    assert.are.same({ nil, "closed" }, { a, b })
    s:close()
  end)

  it("reports reset and pipe, without SIGPIPE, after the peer aborts",
    function()
      local c, s = pair()
      write_all(c, "unread") -- closing with unread data sends RST
      eventually("data at the server", function()
        local p = core.poller()
        p:add(s:fd(), true, false)
        local n = p:wait(0.01, {}, {})
        p:close()
        return n == 1
      end)
      s:close()
      local res = eventually("reset", function()
        local n, e, m = c:write("x")
        if not n and e ~= "wantwrite" then return { e, m } end
        local d, e2, m2 = c:read()
        if not d and e2 ~= "wantread" then return { e2, m2 } end
      end)
      assert.are.same({ "reset", "Connection reset by peer" }, res)
      -- Writing again on the dead socket: EPIPE, and the process lives.
      assert.are.same({ nil, "pipe", "Broken pipe" }, { c:write("again") })
      c:close()
    end)

  it("closes idempotently and reports closed afterwards", function()
    local c, s = pair()
    assert.is_true(c:close())
    assert.is_true(c:close())
    assert.are.equal(-1, c:fd())
    assert.are.same({ nil, "closed", "socket is closed" }, { c:read() })
    assert.are.same({ nil, "closed", "socket is closed" }, { c:write("x") })
    assert.are.equal("ws.core.sock (closed)", tostring(c))
    s:close()
  end)

  it("closes the fd of a garbage-collected listener", function()
    local l = assert(core.tcp_listen("127.0.0.1", 0))
    local port = l:port()
    l = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    local again = assert(core.tcp_listen("127.0.0.1", port))
    again:close()
  end)

  it("closes the fd of a garbage-collected socket", function()
    local c, s = pair()
    c = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    local res = read_status(s)
    assert.are.same({ nil, "eof" }, res)
    s:close()
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.tcp_connect(nil, 80) end)
    assert.has_error(function() core.tcp_connect("127.0.0.1", 0) end)
    assert.has_error(function() core.tcp_listen("127.0.0.1", 70000) end)
    local c, s = pair()
    assert.has_error(function() c:write({}) end)
    assert.has_error(function() c:read("many") end)
    assert.has_error(function() c:shutdown("sideways") end)
    c:close(); s:close()
  end)
end)

describe("pump and flush", function()
  local function engines()
    local ce, se = core.engine("client"), core.engine("server")
    ce:hold_output(true)
    se:hold_output(true)
    return ce, se
  end

  --- Take every queued event out of an engine, appending them to q.
  local function drain(e, q)
    q = q or {}
    for ev in function() return e:event() end do q[#q + 1] = ev end
    return q
  end

  --- Move everything the sender's engine holds into the receiver's engine
  -- until `count` events came out of it. Returns them.
  local function transfer(from, fe, to, te, count)
    local q = {}
    eventually("events", function()
      assert(from:flush(fe))
      to:pump(te)
      drain(te, q)
      return #q >= count
    end, 20)
    return q
  end

  it("exchanges a 1 MiB message between a client and a server engine",
    function()
      local c, s = pair()
      local ce, se = engines()
      local msg = ("0123456789abcdef"):rep(65536)
      assert.are.equal(#msg + 14, ce:send(msg, "binary"))
      local q = transfer(c, ce, s, se, 1)
      assert.are.equal(1, #q)
      assert.are.equal("message", q[1].type)
      assert.are.equal("binary", q[1].kind)
      assert.are.equal(#msg, #q[1].data)
      assert.is_true(q[1].data == msg)
      assert.are.equal(0, c:flush(ce))
      -- and back: the server's frames are unmasked
      assert.are.equal(#msg + 10, se:send(q[1].data, "binary"))
      local back = transfer(s, se, c, ce, 1)
      assert.is_true(back[1].data == msg)
      c:close(); s:close()
    end)

  it("hands out a 200 KiB text frame that one pump reads whole", function()
    -- the read buffer holds 256 KiB: the frame is unmasked and validated
    -- where it was read (the engine's fast path), with a character across
    -- every 64 KiB boundary
    local c, s = pair()
    local ce, se = engines()
    local msg = ("\226\130\172abcde"):rep(25600) -- 200 KiB
    assert.are.equal(#msg + 14, ce:send(msg, "text"))
    assert.are.equal(0, c:flush(ce))
    local p = core.poller()
    p:add(s:fd(), true, false)
    local got = 0
    for _ = 1, 50 do
      ready(p, s:fd())
      local n = assert(s:pump(se))
      got = got + n
      if got == #msg + 14 then break end
    end
    assert.are.equal(#msg + 14, got)
    local q = drain(se)
    assert.are.equal(1, #q)
    assert.are.equal("text", q[1].kind)
    assert.is_true(q[1].data == msg)
    p:close(); c:close(); s:close()
  end)

  it("stops after max bytes with a nil status", function()
    local c, s = pair()
    local ce, se = engines()
    assert.are.equal(106, ce:send(("x"):rep(100)))
    assert.are.equal(0, c:flush(ce))
    local p = core.poller()
    p:add(s:fd(), true, false)
    ready(p, s:fd())
    assert.are.same({ 10, nil }, { s:pump(se, 10) })
    assert.is_nil(se:event())
    assert.are.same({ 96, "wantread" }, { s:pump(se) })
    assert.are.same({ type = "message", kind = "text",
      data = ("x"):rep(100) }, se:event())
    p:close(); c:close(); s:close()
  end)

  it("queues several events in the engine, in order", function()
    local c, s = pair()
    local ce, se = engines()
    ce:send("one"); ce:send("two"); ce:ping("p")
    assert.are.equal(0, c:flush(ce))
    local q = {}
    eventually("three events", function()
      s:pump(se)
      drain(se, q)
      return #q == 3
    end)
    assert.are.same({
      { type = "message", kind = "text", data = "one" },
      { type = "message", kind = "text", data = "two" },
      { type = "ping", data = "p" } }, q)
    c:close(); s:close()
  end)

  it("leaves the events queued until engine:event takes them", function()
    local c, s = pair()
    local ce, se = engines()
    ce:send("a"); ce:send("b")
    assert.are.equal(0, c:flush(ce))
    eventually("both messages", function()
      s:pump(se)
      return se:feed("") == 2
    end)
    assert.are.equal("a", se:event().data)
    assert.are.equal(1, se:feed(""))
    assert.are.equal("b", se:event().data)
    assert.is_nil(se:event())
    c:close(); s:close()
  end)

  it("queues only what came before a violation, which stays pending",
    function()
      local c, s = pair()
      local _, se = engines()
      -- a masked "hi", then an unmasked frame (a violation for a server),
      -- then a message that must not be read
      local bytes = "\129\130\0\0\0\0hi" .. "\129\1x" ..
        "\129\130\0\0\0\0yo"
      assert.are.equal(#bytes, c:write(bytes))
      local q = {}
      eventually("the message", function()
        s:pump(se)
        q[#q + 1] = se:event(true)
        return #q == 1
      end)
      assert.are.same({ type = "message", kind = "text", data = "hi" }, q[1])
      assert.is_true(se:failing())
      local ev = se:event()
      assert.are.equal(1002, ev.code)
      assert.are.equal("protocol:unmasked_frame", ev.error)
      c:close(); s:close()
    end)

  it("reports eof when the peer closes", function()
    local c, s = pair()
    local _, se = engines()
    c:close()
    local res = eventually("eof", function()
      local n, st = s:pump(se)
      if st ~= "wantread" then return { n, st } end
    end)
    assert.are.same({ 0, "eof" }, res)
    assert.is_nil(se:event())
    s:close()
  end)

  it("leaves output pending while the socket is full", function()
    local c, s = pair()
    local ce = engines()
    local big = ("z"):rep(8 * 1024 * 1024)
    local queued = ce:send(big, "binary")
    local pending = c:flush(ce)
    assert.is_true(pending > 0 and pending < queued,
      "pending " .. pending .. " of " .. queued)
    assert.are.equal(pending, ce:buffered_amount())
    c:close(); s:close()
  end)

  it("send_message writes a server's message from the string itself",
    function()
      local c, s = pair()
      local _, se = engines()
      local msg = ("m"):rep(70000)
      -- written at once: nothing is queued in the engine
      assert.are.same({ 70010, 0 }, { s:send_message(se, msg, "binary") })
      assert.are.equal(0, se:buffered_amount())
      assert.are.equal(70010, se:written())
      -- 127: a 64-bit length follows, 70000 = 0x011170
      assert.are.equal("\130\127\0\0\0\0\0\1\17\112" .. msg,
        read_n(c, 70010))
      c:close(); s:close()
    end)

  it("send_message queues behind what waits, in order", function()
    local c, s = pair()
    local _, se = engines()
    se:send("first")
    assert.are.same({ 15, 15 }, { s:send_message(se, "second") })
    assert.are.equal(0, s:flush(se))
    assert.are.equal("\129\5first\129\6second", read_n(c, 15))
    c:close(); s:close()
  end)

  it("send_message queues what the socket does not take", function()
    local c, s = pair()
    local _, se = engines()
    local big = ("q"):rep(8 * 1024 * 1024)
    local pos, waiting = s:send_message(se, big, "binary")
    assert.are.equal(8 * 1024 * 1024 + 10, pos)
    assert.is_true(waiting > 0 and waiting < pos, "waiting " .. waiting)
    assert.are.equal(waiting, se:buffered_amount())
    assert.are.equal(pos - waiting, se:written())
    c:close(); s:close()
  end)

  it("send_message masks a client's message through the engine", function()
    local c, s = pair()
    local ce, se = engines()
    assert.are.same({ 8, 8 }, { c:send_message(ce, "hi") })
    assert.are.equal(0, c:flush(ce))
    local got = {}
    eventually("the message", function()
      s:pump(se)
      local ev = se:event()
      if ev then got[#got + 1] = ev end
      return #got == 1
    end)
    assert.are.same({ type = "message", kind = "text", data = "hi" }, got[1])
    c:close(); s:close()
  end)

  it("send_message checks the text and the state as send does", function()
    local c, s = pair()
    local _, se = engines()
    assert.are.same({ nil, "text is not valid UTF-8", "utf8" },
      { s:send_message(se, "\255") })
    assert.has_error(function() s:send_message(se, "x", "ping") end,
      "bad argument #3 to 'send_message' (\"text\" or \"binary\" "
      .. "expected, got \"ping\")")
    se:close(1000)
    assert.are.same({ nil, "connection is closing", "closing" },
      { s:send_message(se, "late") })
    c:close(); s:close()
  end)

  it("reports a closed socket", function()
    local c, s = pair()
    local ce, se = engines()
    c:close()
    assert.are.same({ 0, "closed", "socket is closed" }, { c:pump(se, 3) })
    assert.are.same({ nil, "closed", "socket is closed" }, { c:flush(ce) })
    s:close()
  end)

  it("raises when the engine argument is not an engine", function()
    local c, s = pair()
    assert.has_error(function() c:pump({}) end)
    assert.has_error(function() c:flush("engine") end)
    c:close(); s:close()
  end)

  it("raises for a max that is not positive", function()
    local c, s = pair()
    local _, se = engines()
    assert.has_error(function() s:pump(se, 0) end)
    c:close(); s:close()
  end)
end)

describe("poller", function()
  it("reports a listener readable once a client connects", function()
    local p = core.poller()
    local l = assert(core.tcp_listen("127.0.0.1", 0))
    assert.is_true(p:add(l:fd(), true, false))
    assert.are.same({ 0, 0 }, { p:wait(0, {}, {}) })
    local c = assert(core.tcp_connect("127.0.0.1", l:port()))
    local out = {}
    local n = p:wait(5, out, {})
    assert.are.equal(1, n)
    assert.are.same({ l:fd(), 1 }, { out[1], out[2] })
    c:close(); l:close(); p:close()
  end)

  it("reports writable and readable sockets, and follows mod and del",
    function()
      local p = core.poller()
      local c, s = pair()
      assert.is_true(p:add(c:fd(), false, true))
      assert.are.equal(2, ready(p, c:fd()))
      assert.is_true(p:mod(c:fd(), true, false))
      assert.are.same({ 0, 0 }, { p:wait(0, {}, {}) })
      write_all(s, "ping")
      assert.are.equal(1, ready(p, c:fd()))
      assert.is_true(p:mod(c:fd(), true, true))
      assert.are.equal(3, ready(p, c:fd()))
      assert.is_true(p:del(c:fd()))
      assert.are.same({ 0, 0 }, { p:wait(0, {}, {}) })
      c:close(); s:close(); p:close()
    end)

  it("reports a socket readable when the peer closes", function()
    local p = core.poller()
    local c, s = pair()
    p:add(c:fd(), true, false)
    s:close()
    local flags = ready(p, c:fd())
    assert.are.equal(1, flags % 2) -- readable: a read gives eof
    c:close(); p:close()
  end)

  it("refuses to add a descriptor twice and to remove an unknown one",
    function()
      local p = core.poller()
      local c, s = pair()
      assert.is_true(p:add(c:fd(), true, false))
      assert.are.same({ nil, "exists", "File exists" },
        { p:add(c:fd(), true, false) })
      assert.is_true(p:del(c:fd()))
      assert.are.same({ nil, "notfound", "No such file or directory" },
        { p:del(c:fd()) })
      c:close(); s:close(); p:close()
    end)

  it("only overwrites the entries it fills", function()
    local p = core.poller()
    local c, s = pair()
    p:add(c:fd(), false, true)
    local out = { "a", "b", "c", "d" }
    local timers = { "t1", "t2" }
    assert.are.same({ 1, 0 }, { p:wait(1, out, timers) })
    assert.are.same({ c:fd(), 2, "c", "d" }, out)
    assert.are.same({ "t1", "t2" }, timers)
    c:close(); s:close(); p:close()
  end)

  it("fires timers in deadline order", function()
    local p = core.poller()
    local late = p:timer(0.06)
    local early = p:timer(0.02)
    local middle = p:timer(0.04)
    local fired, out = {}, {}
    local deadline = core.now() + 5
    while #fired < 3 and core.now() < deadline do
      local _, nt = p:wait(1, {}, out)
      for i = 1, nt do fired[#fired + 1] = out[i] end
    end
    assert.are.same({ early, middle, late }, fired)
    p:close()
  end)

  it("fires timers with equal deadlines in creation order", function()
    local p = core.poller()
    local ids = { p:timer(0), p:timer(0), p:timer(0), p:timer(-1) }
    local out = {}
    sleep(0.002)
    assert.are.same({ 0, 4 }, { p:wait(0, {}, out) })
    -- -1 counts as 0 but was created last
    assert.are.same(ids, out)
    p:close()
  end)

  it("does not wait past the next timer", function()
    local p = core.poller()
    local id = p:timer(0.03)
    local out = {}
    local t0 = core.now()
    assert.are.same({ 0, 1 }, { p:wait(5, {}, out) })
    local dt = core.now() - t0
    assert.are.equal(id, out[1])
    assert.is_true(dt >= 0.029 and dt < 1, "waited " .. dt)
    p:close()
  end)

  it("with a nil timeout, waits until a timer fires", function()
    local p = core.poller()
    local id = p:timer(0.01)
    local out = {}
    assert.are.same({ 0, 1 }, { p:wait(nil, {}, out) })
    assert.are.equal(id, out[1])
    p:close()
  end)

  it("cancels a pending timer once", function()
    local p = core.poller()
    local a = p:timer(0.01)
    local b = p:timer(0.02)
    assert.is_true(p:cancel(a))
    assert.is_false(p:cancel(a))
    assert.is_false(p:cancel(123456789))
    local out = {}
    assert.are.same({ 0, 1 }, { p:wait(5, {}, out) })
    assert.are.equal(b, out[1])
    assert.is_false(p:cancel(b)) -- already fired
    p:close()
  end)

  it("reports the time until the next timer", function()
    local p = core.poller()
    assert.is_nil(p:next_timer())
    local far = p:timer(10)
    local d = p:next_timer()
    assert.is_true(d > 9.5 and d <= 10, "next " .. d)
    local near = p:timer(2)
    d = p:next_timer()
    assert.is_true(d > 1.5 and d <= 2, "next " .. d)
    p:cancel(near)
    d = p:next_timer()
    assert.is_true(d > 9 and d <= 10, "next " .. d)
    p:cancel(far)
    assert.is_nil(p:next_timer())
    p:close()
  end)

  it("keeps many timers in order through cancels", function()
    local p = core.poller()
    -- 200 timers in 10 interleaved groups 10 ms apart: the heap has work
    -- to do, and within a group creation order decides
    local function delay(i) return ((i * 7) % 10) * 0.01 end
    local ids, order, want = {}, {}, {}
    for i = 1, 200 do ids[i] = p:timer(delay(i)) end
    for i = 1, 200, 3 do assert.is_true(p:cancel(ids[i])) end
    for i = 1, 200 do
      if (i - 1) % 3 ~= 0 then order[#order + 1] = i end
    end
    table.sort(order, function(x, y)
      if delay(x) ~= delay(y) then return delay(x) < delay(y) end
      return x < y
    end)
    for i, k in ipairs(order) do want[i] = ids[k] end
    local fired, out = {}, {}
    local deadline = core.now() + 5
    while #fired < #want and core.now() < deadline do
      local _, nt = p:wait(1, {}, out)
      for i = 1, nt do fired[#fired + 1] = out[i] end
    end
    assert.are.same(want, fired)
    p:close()
  end)

  it("raises once closed", function()
    local p = core.poller()
    p:close()
    p:close()
    assert.has_error(function() p:timer(1) end,
      "attempt to use a closed poller")
  end)
end)

-- ------------------------------------------------------------------ TLS

local certs = require "support.certs"
local sh, make_certs = certs.sh, certs.make

describe("TLS", function()
  local dir, ca

  lazy_setup(function()
    dir = make_certs()
    ca = dir .. "/ca.pem"
  end)

  lazy_teardown(function()
    if dir then sh("rm -rf '" .. dir .. "'") end
  end)

  local function server_ctx(name, extra)
    local opts = { mode = "server", cert_file = dir .. "/" .. name .. ".pem",
      key_file = dir .. "/" .. name .. ".key" }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(core.tls_context(opts))
  end

  local function client_ctx(opts)
    opts = opts or {}
    if opts.ca_file == nil and opts.verify ~= false then opts.ca_file = ca end
    return assert(core.tls_context(opts))
  end

  --- Run both handshakes to the end. Returns the client's and the
  -- server's results as tables: { true } or { nil, "tls", message }.
  local function handshake(c, s)
    local cr, sr
    eventually("TLS handshakes", function()
      if not cr then
        local ok, err, msg = c:tls_handshake()
        if ok or (err ~= "wantread" and err ~= "wantwrite") then
          cr = { ok, err, msg }
        end
      end
      if not sr then
        local ok, err, msg = s:tls_handshake()
        if ok or (err ~= "wantread" and err ~= "wantwrite") then
          sr = { ok, err, msg }
        end
      end
      return cr and sr
    end)
    return cr, sr
  end

  --- A TCP pair with TLS started on both ends and the handshakes run.
  local function tls_pair(cctx, sctx, hostname, host)
    local c, s = pair(host)
    assert.is_true(c:tls_start(cctx, hostname))
    assert.is_true(s:tls_start(sctx))
    local cr, sr = handshake(c, s)
    return c, s, cr, sr
  end

  --- A TLS pair (verified for localhost) and a client and a server engine
  -- whose output stays queued for flush.
  local function tls_engines()
    local c, s = tls_pair(client_ctx(), server_ctx("server"), "localhost")
    local ce, se = core.engine("client"), core.engine("server")
    ce:hold_output(true)
    se:hold_output(true)
    return c, s, ce, se
  end

  --- Flush the sender and pump the receiver until an event comes out.
  local function next_event(from, fe, to, te)
    local got
    eventually("an event", function()
      assert(from:flush(fe))
      to:pump(te)
      got = te:event()
      return got
    end, 20)
    return got
  end

  it("completes a handshake verified against ca_file for localhost",
    function()
      local c, s, cr, sr = tls_pair(client_ctx(), server_ctx("server"),
        "localhost")
      assert.are.same({ true }, cr)
      assert.are.same({ true }, sr)
      local info = c:tls_info()
      assert.are.equal("TLSv1.3", info.version)
      assert.are.equal("string", type(info.cipher))
      assert.are.equal("http/1.1", info.alpn)
      assert.are.equal("CN=localhost", info.peer_subject)
      assert.is_nil(s:tls_info().peer_subject)
      c:close(); s:close()
    end)

  it("returns nil tls_info for a plain socket", function()
    local c, s = pair()
    assert.is_nil(c:tls_info())
    c:close(); s:close()
  end)

  it("carries data both ways once the handshake is done", function()
    local c, s = tls_pair(client_ctx(), server_ctx("server"), "localhost")
    write_all(c, "over tls")
    assert.are.equal("over tls", read_n(s, 8))
    write_all(s, "and back")
    assert.are.equal("and back", read_n(c, 8))
    c:close(); s:close()
  end)

  it("verifies an IPv4 literal against the certificate's IP addresses",
    function()
      local c, s, cr, sr = tls_pair(client_ctx(), server_ctx("server"),
        "127.0.0.1")
      assert.are.same({ true }, cr)
      assert.are.same({ true }, sr)
      c:close(); s:close()
    end)

  it6("verifies an IPv6 literal, bracketed as in a URL", function()
    local c, s, cr = tls_pair(client_ctx(), server_ctx("server"), "[::1]",
      "::1")
    assert.are.same({ true }, cr)
    c:close(); s:close()
  end)

  it("fails on a certificate for another host name", function()
    local c, s, cr, sr = tls_pair(client_ctx(), server_ctx("other"),
      "localhost")
    assert.are.same({ nil, "tls", "certificate verify failed: hostname mismatch" }, cr)
    assert.are.same({ nil, "tls", "sslv3 alert bad certificate" }, sr)
    c:close(); s:close()
  end)

  it("fails on an IP address the certificate does not list", function()
    local c, s, cr = tls_pair(client_ctx(), server_ctx("other"), "127.0.0.1")
    assert.are.same({ nil, "tls", "certificate verify failed: IP address mismatch" }, cr)
    c:close(); s:close()
  end)

  it("fails on a self-signed certificate", function()
    local c, s, cr = tls_pair(client_ctx(), server_ctx("self"), "localhost")
    assert.are.same({ nil, "tls", "certificate verify failed: self-signed certificate" }, cr)
    c:close(); s:close()
  end)

  it("fails on a chain that ends in an untrusted root", function()
    local sctx = assert(core.tls_context{ mode = "server",
      cert_file = dir .. "/untrusted-chain.pem",
      key_file = dir .. "/untrusted.key" })
    local c, s, cr = tls_pair(client_ctx(), sctx, "localhost")
    assert.are.same({ nil, "tls",
      "certificate verify failed: self-signed certificate in certificate chain" }, cr)
    c:close(); s:close()
  end)

  it("fails on an expired certificate", function()
    local c, s, cr, sr = tls_pair(client_ctx(), server_ctx("expired"),
      "localhost")
    assert.are.same({ nil, "tls", "certificate verify failed: certificate has expired" }, cr)
    assert.are.same({ nil, "tls", "sslv3 alert certificate expired" }, sr)
    c:close(); s:close()
  end)

  it("verifies against the system trust store by default", function()
    -- our test CA is not in it
    local c, s, cr = tls_pair(assert(core.tls_context{}), server_ctx("server"),
      "localhost")
    assert.are.same({ nil, "tls",
      "certificate verify failed: unable to get local issuer certificate" }, cr)
    c:close(); s:close()
  end)

  it("fails when the versions do not overlap", function()
    local c, s, cr, sr = tls_pair(client_ctx{ max_version = "1.2" },
      server_ctx("server", { min_version = "1.3" }), "localhost")
    assert.are.same({ nil, "tls", "tlsv1 alert protocol version" }, cr)
    assert.are.same({ nil, "tls", "unsupported protocol" }, sr)
    c:close(); s:close()
  end)

  it("negotiates TLS 1.2 when the client asks for at most 1.2", function()
    local c, s, cr = tls_pair(client_ctx{ max_version = "1.2" },
      server_ctx("server"), "localhost")
    assert.are.same({ true }, cr)
    assert.are.equal("TLSv1.2", c:tls_info().version)
    assert.are.equal("http/1.1", c:tls_info().alpn)
    c:close(); s:close()
  end)

  it("connects to a self-signed server when verify = false", function()
    local c, s, cr, sr = tls_pair(client_ctx{ verify = false },
      server_ctx("self"), "localhost")
    assert.are.same({ true }, cr)
    assert.are.same({ true }, sr)
    c:close(); s:close()
  end)

  it("negotiates ALPN http/1.1 on both ends", function()
    local c, s = tls_pair(client_ctx(), server_ctx("server"), "localhost")
    assert.are.equal("http/1.1", c:tls_info().alpn)
    assert.are.equal("http/1.1", s:tls_info().alpn)
    c:close(); s:close()
  end)

  it("goes on without ALPN when the client offers nothing the server has",
    function()
      local c, s, cr = tls_pair(client_ctx{ alpn = { "h2" } },
        server_ctx("server"), "localhost")
      assert.are.same({ true }, cr)
      assert.is_nil(c:tls_info().alpn)
      assert.is_nil(s:tls_info().alpn)
      c:close(); s:close()
    end)

  it("accepts a client certificate a server requires", function()
    local c, s, cr, sr = tls_pair(
      client_ctx{ cert_file = dir .. "/client.pem", key_file = dir .. "/client.key" },
      server_ctx("server", { ca_file = ca, verify_client = true }), "localhost")
    assert.are.same({ true }, cr)
    assert.are.same({ true }, sr)
    assert.are.equal("CN=lua-ws client", s:tls_info().peer_subject)
    write_all(c, "authenticated")
    assert.are.equal("authenticated", read_n(s, 13))
    c:close(); s:close()
  end)

  it("refuses a client without the certificate the server requires",
    function()
      local c, s, cr, sr = tls_pair(client_ctx(),
        server_ctx("server", { ca_file = ca, verify_client = true }),
        "localhost")
      assert.are.same({ nil, "tls", "peer did not return a certificate" }, sr)
      -- In TLS 1.3 the client finishes first; the refusal arrives as an
      -- alert on its next read.
      if cr[1] then
        local res = read_status(c)
        cr = res
      end
      assert.are.same({ nil, "tls", "tlsv13 alert certificate required" }, cr)
      c:close(); s:close()
    end)

  it("pumps and flushes a 1 MiB message through TLS", function()
    local c, s, ce, se = tls_engines()
    local msg = ("tls!"):rep(262144)
    ce:send(msg, "binary")
    assert.is_true(next_event(c, ce, s, se).data == msg)
    se:send("done")
    assert.are.equal("done", next_event(s, se, c, ce).data)
    c:close(); s:close()
  end)

  it("gathers TLS records for the engine, within pump's max", function()
    -- a 100 KiB text frame spans seven records, with characters across
    -- their boundaries; pump reads records into one buffer and never
    -- more than max
    local c, s, ce, se = tls_engines()
    local msg = ("\226\130\172abcde"):rep(12800)
    assert.are.equal(#msg + 14, ce:send(msg, "text"))
    local first
    eventually("a first read", function()
      assert(c:flush(ce))
      local n = assert(s:pump(se, 20000))
      if n > 0 then first = n end
      return first
    end, 20)
    assert.is_true(first <= 20000, first)
    local got = next_event(c, ce, s, se)
    assert.are.equal("text", got.kind)
    assert.is_true(got.data == msg)
    c:close(); s:close()
  end)

  it("hands out every record one socket read brought, in one pump",
    function()
      -- OpenSSL reads ahead: three records come in with one recv and wait
      -- in OpenSSL, where no poller sees them. The pump must take them
      -- all, and report "wantread" only once nothing is left there.
      local c, s, ce, se = tls_engines()
      for i = 1, 3 do -- a write, so a record, each
        ce:send("m" .. i)
        assert.are.equal(0, c:flush(ce))
      end
      local p = core.poller()
      p:add(s:fd(), true, false)
      local n, st
      for _ = 1, 50 do
        ready(p, s:fd())
        n, st = s:pump(se)
        if n > 0 then break end
      end
      assert.are.same({ 3 * 8, "wantread" }, { n, st })
      local q = {}
      for ev in function() return se:event() end do q[#q + 1] = ev.data end
      assert.are.same({ "m1", "m2", "m3" }, q)
      p:close(); c:close(); s:close()
    end)

  it("sends close_notify on close, read by the peer as eof", function()
    local c, s = tls_pair(client_ctx(), server_ctx("server"), "localhost")
    c:close()
    local res = read_status(s)
    assert.are.same({ nil, "eof" }, res)
    s:close()
  end)

  it("reads eof when the peer drops TCP without close_notify", function()
    local c, s = tls_pair(client_ctx(), server_ctx("server"), "localhost")
    assert.is_true(c:shutdown("both"))
    local res = read_status(s)
    assert.are.same({ nil, "eof" }, res)
    c:close(); s:close()
  end)

  it("fails the handshake when the peer closes in the middle", function()
    local c, s = pair()
    assert.is_true(c:tls_start(client_ctx(), "localhost"))
    assert.are.same({ nil, "wantread" }, { c:tls_handshake() })
    -- read the ClientHello first, so the close is a FIN and not a reset
    assert.are.equal(22, eventually("the ClientHello", function()
      return s:read()
    end):byte(1)) -- a TLS handshake record
    s:close()
    local res = eventually("failure", function()
      local ok, e, m = c:tls_handshake()
      if e ~= "wantread" then return { ok, e, m } end
    end)
    assert.are.same({ nil, "tls", "connection closed during the TLS handshake" }, res)
    c:close()
  end)

  it("refuses to start a verifying client without a host name", function()
    local c, s = pair()
    assert.are.same({ nil, "tls", "a host name is needed to verify the " ..
      "server (or a context with verify = false)" }, { c:tls_start(client_ctx()) })
    assert.is_nil(c:tls_info())
    assert.is_true(c:tls_start(client_ctx{ verify = false }))
    c:close(); s:close()
  end)

  it("refuses to start TLS twice", function()
    local c, s = pair()
    local ctx = client_ctx()
    assert.is_true(c:tls_start(ctx, "localhost"))
    assert.are.same({ nil, "tls", "TLS is already started" },
      { c:tls_start(ctx, "localhost") })
    c:close(); s:close()
  end)

  it("keeps its context alive for as long as a connection uses it",
    function()
      local c, s = pair()
      assert.is_true(c:tls_start(client_ctx(), "localhost"))
      assert.is_true(s:tls_start(server_ctx("server")))
      collectgarbage()
      collectgarbage()
      local cr, sr = handshake(c, s)
      assert.are.same({ true }, cr)
      assert.are.same({ true }, sr)
      c:close(); s:close()
    end)

  describe("tls_context", function()
    it("raises on an unknown option, naming it", function()
      assert.has_error(function() core.tls_context{ verfiy = false } end,
        "tls_context: unknown option 'verfiy'")
    end)

    it("raises on options of the wrong type or value", function()
      assert.has_error(function() core.tls_context{ verify = "no" } end,
        "bad option 'verify' to 'tls_context' (boolean expected, got string)")
      assert.has_error(function() core.tls_context{ min_version = "1.1" } end,
        "bad option 'min_version' to 'tls_context' (\"1.2\" or \"1.3\" expected, got \"1.1\")")
      assert.has_error(function() core.tls_context{ mode = "peer" } end,
        "bad option 'mode' to 'tls_context' (\"client\" or \"server\" expected, got \"peer\")")
      assert.has_error(function() core.tls_context{ alpn = { "" } } end,
        "bad option 'alpn' to 'tls_context' (entry 1: a protocol name of 1 to 255 bytes expected)")
      assert.has_error(function()
        core.tls_context{ min_version = "1.3", max_version = "1.2" }
      end, "tls_context: min_version is above max_version")
    end)

    it("raises for a server without a certificate", function()
      assert.has_error(function() core.tls_context{ mode = "server" } end,
        "tls_context: a server needs cert_file and key_file")
    end)

    it("reports a ca_file that cannot be read", function()
      assert.are.same({ nil, "tls",
        "cannot load ca_file '/nonexistent/ca.pem': No such file or directory" },
        { core.tls_context{ ca_file = "/nonexistent/ca.pem" } })
    end)

    it("reports a key that does not match the certificate", function()
      local cert, key = dir .. "/server.pem", dir .. "/other.key"
      assert.are.same({ nil, "tls",
        "key_file '" .. key .. "' does not match cert_file '" .. cert .. "'" },
        { core.tls_context{ mode = "server", cert_file = cert, key_file = key } })
    end)

    it("reports a cipher list OpenSSL does not know", function()
      assert.are.same({ nil, "tls", "bad ciphers 'NOPE': no cipher match" },
        { core.tls_context{ ciphers = "NOPE" } })
    end)

    it("can be made many times over", function()
      for _ = 1, 300 do
        assert(core.tls_context{ verify = false })
      end
      collectgarbage()
    end)

    it("knows its mode", function()
      assert.are.equal("client", core.tls_context{}:mode())
      assert.are.equal("server", server_ctx("server"):mode())
    end)
  end)
end)
