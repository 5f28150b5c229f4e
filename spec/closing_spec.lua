-- The closing handshake to the letter (RFC 6455 5.5.1, 7.1.1-7.1.7, 7.4),
-- checked on the wire: a scripted peer (spec/support/wire_peer.py, a
-- separate process) records every frame it receives, the close frames it
-- sends and when our FIN arrives, and the kernel says who holds
-- TIME_WAIT. One block per way a connection ends (the table in
-- doc/closing.md), each in both roles on the event loop; the nginx rows
-- are in spec/resty_spec.lua.
local ws = require "ws"
local run = require "support.wire_run"

local words, index = run.words, run.index

-- The peer's steps after our FIN has had time to come (or not): it
-- closes TCP itself and waits for ours.
local SERVER_ENDS = "read:0.3;shutdown;read_until_fin:3;close"

local function url(peer) return "ws://127.0.0.1:" .. peer.port .. "/" end

local function pair(t) return t and (t.code .. "/" .. t.reason) or "-" end

-- The fields of a close event the table lists.
local function row(ev)
  return ("code=%d name=%s clean=%s initiator=%s error=%s sent=%s "
    .. "received=%s"):format(ev.code, ev.name, tostring(ev.clean),
    ev.initiator, tostring(ev.error), pair(ev.sent), pair(ev.received))
end

-- Nothing the peer received after our close frame (the close frame is the
-- last frame; only a FIN, a reset or the end may follow).
local function nothing_after_close(w)
  local i = 0
  for k, x in ipairs(w) do if x:match("^close:") then i = k end end
  for k = i + 1, #w do
    assert(not w[k]:match("^frame:") and not w[k]:match("^close:"),
      "a frame after the close frame: " .. table.concat(w, " "))
  end
end

-- Our FIN reached a server peer only after the peer's own shutdown.
local function server_closed_first(w)
  local fin, shut = index(w, "fin"), index(w, "shutdown")
  assert(shut, "the peer never shut down: " .. table.concat(w, " "))
  assert(fin and fin > shut, "our FIN came before the server's: "
    .. table.concat(w, " "))
end

describe("the closing handshake on the wire, our client", function()
  it("local close: clean, the server closes TCP first and holds TIME_WAIT",
    function()
      local peer = run.start("server",
        "expect_close:5;send_close:1000:bye;" .. SERVER_ENDS)
      local c = assert(ws.connect(url(peer)))
      local t0 = ws.now()
      local ev = c:close(1000, "bye")
      local took = ws.now() - t0
      assert.are.equal("code=1000 name=normal clean=true initiator=local "
        .. "error=nil sent=1000/bye received=1000/bye", row(ev))
      local log = peer:log()
      local w = words(log)
      assert.are.same({ "close:1000", "sent:close", "shutdown", "fin",
        "close" }, w)
      server_closed_first(w)
      assert.is_true(took >= 0.25, "close returned before the server's FIN")
      assert.is_true(run.time_wait(log.local_port, log.peer_port))
      assert.is_false(run.time_wait(log.peer_port, log.local_port))
    end)

  it("peer close: answered with the peer's code, clean, server FIN first",
    function()
      local peer = run.start("server",
        "send_close:1001:going;expect_close:5;" .. SERVER_ENDS)
      local c = assert(ws.connect(url(peer)))
      local data, err, ev = c:receive(5)
      assert.is_nil(data)
      assert.are.equal("closed", err)
      assert.are.equal("code=1001 name=going_away clean=true "
        .. "initiator=remote error=nil sent=1001/ received=1001/going", row(ev))
      c:close()
      local log = peer:log()
      local w = words(log)
      assert.are.same({ "sent:close", "close:1001", "shutdown", "fin",
        "close" }, w)
      assert.is_true(run.time_wait(log.local_port, log.peer_port))
    end)

  it("simultaneous close: both close frames cross, clean on both sides",
    function()
      -- the peer's close frame waits unread in our socket while we send
      -- ours: from each side's view, its own close came first
      local peer = run.start("server",
        "sleep:0.1;send_close:1000:server;expect_close:5;" .. SERVER_ENDS)
      local c = assert(ws.connect(url(peer)))
      os.execute("sleep 0.3") -- the loop does not run: nothing is read
      local ev = c:close(1000, "client")
      assert.are.equal("code=1000 name=normal clean=true initiator=local "
        .. "error=nil sent=1000/client received=1000/server", row(ev))
      local w = words(peer:log())
      assert.are.same({ "sent:close", "close:1000", "shutdown", "fin",
        "close" }, w)
    end)

  it("the server never closes TCP: the client still ends within linger, "
    .. "and the handshake was clean", function()
      local peer = run.start("server",
        "expect_close:5;send_close:1000:;read_until_fin:5;close")
      local c = assert(ws.connect(url(peer), { linger = 0.5 }))
      local t0 = ws.now()
      local ev = c:close(1000)
      local took = ws.now() - t0
      assert.are.equal("code=1000 name=normal clean=true initiator=local "
        .. "error=nil sent=1000/ received=1000/", row(ev))
      assert.is_true(took >= 0.45 and took < 2, "took " .. took)
      local w = words(peer:log())
      assert.are.same({ "close:1000", "sent:close", "fin", "close" }, w)
    end)

  it("silent peer: 1006 close_timeout; the close frame crossed, nothing "
    .. "came back", function()
      local peer = run.start("server", "read:1.5")
      local c = assert(ws.connect(url(peer)))
      local ev = c:close(1000, "anyone?", 0.5)
      assert.are.equal("code=1006 name=abnormal clean=false initiator=local "
        .. "error=close_timeout sent=1000/anyone? received=-", row(ev))
      local w = words(peer:log())
      assert.are.same({ "close:1000", "fin" }, { w[1], w[2] })
    end)

  it("transport loss: 1006 from the transport, no close frame either way",
    function()
      local peer = run.start("server", "sleep:0.2;reset")
      local c = assert(ws.connect(url(peer)))
      local _, err, ev = c:receive(5)
      assert.are.equal("closed", err)
      assert.are.equal("code=1006 name=abnormal clean=false "
        .. "initiator=transport error=reset sent=- received=-", row(ev))
      assert.are.same({ "close" }, words(peer:log()))
    end)

  it("the peer ends TCP without a close frame: 1006 eof, and we send none",
    function()
      local peer = run.start("server", "shutdown;read_until_fin:3;close")
      local c = assert(ws.connect(url(peer)))
      local _, err, ev = c:receive(5)
      assert.are.equal("closed", err)
      assert.are.equal("code=1006 name=abnormal clean=false "
        .. "initiator=transport error=eof sent=- received=-", row(ev))
      assert.are.same({ "shutdown", "fin", "close" }, words(peer:log()))
    end)

  it("protocol error we detect: 1002 sent, nothing after it, the server "
    .. "closes first", function()
      -- opcode 3 is reserved
      local peer = run.start("server",
        "send_raw:8300;expect_close:5;" .. SERVER_ENDS)
      local c = assert(ws.connect(url(peer)))
      local _, err, ev = c:receive(5)
      assert.are.equal("closed", err)
      assert.are.equal("code=1002 name=protocol_error clean=false "
        .. "initiator=local error=protocol:reserved_opcode sent=1002/"
        .. "protocol:reserved_opcode received=-", row(ev))
      local w = words(peer:log())
      assert.are.same({ "sent:raw", "close:1002", "shutdown", "fin",
        "close" }, w)
      server_closed_first(w)
    end)

  it("protocol error the peer detects: its 1002 answered, clean", function()
    local peer = run.start("server",
      "send_close:1002:bad frame;expect_close:5;" .. SERVER_ENDS)
    local c = assert(ws.connect(url(peer)))
    local _, err, ev = c:receive(5)
    assert.are.equal("closed", err)
    assert.are.equal("code=1002 name=protocol_error clean=true "
      .. "initiator=remote error=nil sent=1002/ received=1002/bad frame",
      row(ev))
    local w = words(peer:log())
    assert.are.same({ "sent:close", "close:1002", "shutdown", "fin",
      "close" }, w)
  end)

  it("heartbeat timeout: 1011 sent, then 1006 heartbeat_timeout", function()
    local peer = run.start("server", "sleep:1;read:1")
    local c = assert(ws.connect(url(peer), {
      heartbeat = { interval = 0.1, timeout = 0.2 } }))
    local _, err, ev = c:receive(5)
    assert.are.equal("closed", err)
    assert.are.equal("code=1006 name=abnormal clean=false "
      .. "initiator=transport error=heartbeat_timeout "
      .. "sent=1011/heartbeat timeout received=-",
      row(ev))
    local w = words(peer:log())
    assert.are.equal("frame:9", w[1])
    assert.are.equal("close:1011", w[2])
    nothing_after_close(w)
  end)

  it("abort: 1006 aborted, no close frame on the wire", function()
    local peer = run.start("server", "read_until_fin:5;close")
    local c = assert(ws.connect(url(peer)))
    c:send("hi")
    local ev = c:abort()
    assert.are.equal("code=1006 name=abnormal clean=false initiator=local "
      .. "error=aborted sent=- received=-", row(ev))
    assert.are.same({ "frame:1", "fin", "close" }, words(peer:log()))
  end)

  it("bad close arguments raise, send nothing, and leave the connection "
    .. "usable", function()
      local peer = run.start("server",
        "expect_close:5;send_close:1000:fine;" .. SERVER_ENDS)
      local c = assert(ws.connect(url(peer)))
      assert.has_error(function() c:close(1000, "ok\255\254") end,
        "bad argument #2 to 'close' (close reason is not valid UTF-8)")
      assert.has_error(function() c:close(1000, ("r"):rep(124)) end,
        "bad argument #2 to 'close' (reason is 124 bytes, at most 123 "
        .. "allowed)")
      assert.has_error(function() c:close(1005) end,
        "bad argument #1 to 'close' (close code 1005 (no_status) may not "
        .. "be sent)")
      assert.are.equal("open", c.state)
      assert.is_true(c:send("still here"))
      local ev = c:close(1000, "fine")
      assert.are.equal("code=1000 name=normal clean=true initiator=local "
        .. "error=nil sent=1000/fine received=1000/fine", row(ev))
      local log = peer:log()
      assert.are.same({ "frame:1", "close:1000", "sent:close", "shutdown",
        "fin", "close" }, words(log))
      assert.are.equal(run.hex("still here"), log.events[1].data)
    end)
end)

describe("the closing handshake on the wire, our server", function()
  -- Serve one connection with handler(conn) -> close event, against a
  -- client peer running `script`; returns the event and the peer's log.
  local function serve(handler, script, opts)
    local ev
    local o = { host = "127.0.0.1", port = 0, handler = function(conn)
      ev = handler(conn)
    end }
    for k, v in pairs(opts or {}) do o[k] = v end
    local srv = ws.listen(o)
    local peer = run.start("client", script, { port = srv.port })
    local log = peer:log()
    run.drive_until(function() return ev end)
    srv:close()
    return ev, log
  end

  local function receive_close(conn)
    local _, _, ev = conn:receive(5)
    return ev
  end

  it("local close: clean, our FIN first, we hold TIME_WAIT", function()
    local ev, log = serve(function(conn) return conn:close(1000, "bye") end,
      "expect_close:5;send_close:1000:bye;read_until_fin:3;close")
    assert.are.equal("code=1000 name=normal clean=true initiator=local "
      .. "error=nil sent=1000/bye received=1000/bye", row(ev))
    assert.are.same({ "close:1000", "sent:close", "fin", "close" },
      words(log))
    run.drive_until(function()
      return run.time_wait(log.peer_port, log.local_port) or nil
    end)
    assert.is_false(run.time_wait(log.local_port, log.peer_port))
  end)

  it("peer close: answered, clean, our FIN follows at once", function()
    local ev, log = serve(receive_close,
      "send_close:1000:bye;expect_close:5;read_until_fin:3;close")
    assert.are.equal("code=1000 name=normal clean=true initiator=remote "
      .. "error=nil sent=1000/ received=1000/bye", row(ev))
    local w = words(log)
    assert.are.same({ "sent:close", "close:1000", "fin", "close" }, w)
    -- the FIN came with the reply, not after a wait
    local ev_reply, ev_fin = log.events[2], log.events[3]
    assert.is_true(ev_fin.t - ev_reply.t < 500)
  end)

  it("simultaneous close: clean on both sides", function()
    local ev, log = serve(function(conn)
      os.execute("sleep 0.3") -- the loop does not run: nothing is read
      return conn:close(1000, "server")
    end, "sleep:0.1;send_close:1000:client;expect_close:5;"
      .. "read_until_fin:3;close")
    assert.are.equal("code=1000 name=normal clean=true initiator=local "
      .. "error=nil sent=1000/server received=1000/client", row(ev))
    assert.are.same({ "sent:close", "close:1000", "fin", "close" },
      words(log))
  end)

  it("silent peer: 1006 close_timeout, then our FIN", function()
    local ev, log = serve(function(conn)
      return conn:close(1000, "anyone?", 0.5)
    end, "read:3")
    assert.are.equal("code=1006 name=abnormal clean=false initiator=local "
      .. "error=close_timeout sent=1000/anyone? received=-", row(ev))
    assert.are.same({ "close:1000", "fin", "close" }, words(log))
  end)

  it("transport loss: 1006 reset, no close frame", function()
    local ev, log = serve(receive_close, "sleep:0.2;reset")
    assert.are.equal("code=1006 name=abnormal clean=false "
      .. "initiator=transport error=reset sent=- received=-", row(ev))
    assert.are.same({ "close" }, words(log))
  end)

  it("protocol error we detect: 1002 sent, nothing after it, our FIN",
    function()
      -- an unmasked frame from a client
      local ev, log = serve(receive_close,
        "send_raw:810161;expect_close:5;read_until_fin:3;close")
      assert.are.equal("code=1002 name=protocol_error clean=false "
        .. "initiator=local error=protocol:unmasked_frame "
        .. "sent=1002/protocol:unmasked_frame received=-", row(ev))
      local w = words(log)
      assert.are.same({ "sent:raw", "close:1002", "fin", "close" }, w)
    end)

  it("protocol error the peer detects: its 1002 answered, clean", function()
    local ev, log = serve(receive_close,
      "send_close:1002:bad frame;expect_close:5;read_until_fin:3;close")
    assert.are.equal("code=1002 name=protocol_error clean=true "
      .. "initiator=remote error=nil sent=1002/ received=1002/bad frame",
      row(ev))
    assert.are.same({ "sent:close", "close:1002", "fin", "close" },
      words(log))
  end)

  it("heartbeat timeout: 1011 sent, then 1006 heartbeat_timeout", function()
    local ev, log = serve(receive_close, "sleep:1;read:2",
      { heartbeat = { interval = 0.1, timeout = 0.2 } })
    assert.are.equal("code=1006 name=abnormal clean=false "
      .. "initiator=transport error=heartbeat_timeout "
      .. "sent=1011/heartbeat timeout received=-", row(ev))
    local w = words(log)
    assert.are.same({ "frame:9", "close:1011" }, { w[1], w[2] })
    nothing_after_close(w)
  end)

  it("abort: 1006 aborted, no close frame on the wire", function()
    local ev, log = serve(function(conn)
      conn:receive(5)
      return conn:abort()
    end, "send_text:hi;read_until_fin:5;close")
    assert.are.equal("code=1006 name=abnormal clean=false initiator=local "
      .. "error=aborted sent=- received=-", row(ev))
    assert.are.same({ "sent:text", "fin", "close" }, words(log))
  end)

  it("bad close arguments raise, send nothing, and leave the connection "
    .. "usable", function()
      local errs = {}
      local ev, log = serve(function(conn)
        for _, args in ipairs({ { 1000, "ok\255\254" },
            { 1000, ("r"):rep(124) }, { 999 }, { 1015 }, { 2999 },
            { 5000 } }) do
          local ok, err = pcall(conn.close, conn, args[1], args[2])
          errs[#errs + 1] = ok and "no error" or err
        end
        assert(conn:send("still here"))
        return conn:close(1000, "fine")
      end, "expect_close:5;send_close:1000:fine;read_until_fin:3;close")
      assert.are.same({
        "bad argument #2 to 'close' (close reason is not valid UTF-8)",
        "bad argument #2 to 'close' (reason is 124 bytes, at most 123 "
          .. "allowed)",
        "bad argument #1 to 'close' (close code 999 may not be sent)",
        "bad argument #1 to 'close' (close code 1015 (tls_handshake) may "
          .. "not be sent)",
        "bad argument #1 to 'close' (close code 2999 may not be sent)",
        "bad argument #1 to 'close' (close code 5000 may not be sent)",
      }, errs)
      assert.are.equal("code=1000 name=normal clean=true initiator=local "
        .. "error=nil sent=1000/fine received=1000/fine", row(ev))
      assert.are.same({ "frame:1", "close:1000", "sent:close", "fin",
        "close" }, words(log))
    end)
end)

describe("the closing handshake on the wire, over TLS", function()
  local certs = require "support.certs"
  local dir

  lazy_setup(function() dir = certs.make() end)
  lazy_teardown(function() certs.remove(dir) end)

  local function wss(peer)
    return "wss://localhost:" .. peer.port .. "/"
  end

  local function tls_client_opts(extra)
    local o = { tls = { ca_file = dir .. "/ca.pem" } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  it("our client: the server's close_notify and FIN come first; clean",
    function()
      local peer = run.start("server",
        "expect_close:5;send_close:1000:bye;" .. SERVER_ENDS,
        { cert = dir .. "/server.pem", key = dir .. "/server.key" })
      local c = assert(ws.connect(wss(peer), tls_client_opts()))
      local t0 = ws.now()
      local ev = c:close(1000, "bye")
      local took = ws.now() - t0
      assert.are.equal("code=1000 name=normal clean=true initiator=local "
        .. "error=nil sent=1000/bye received=1000/bye", row(ev))
      local log = peer:log()
      local w = words(log)
      -- our close_notify answers the server's, then our FIN
      assert.are.same({ "close:1000", "sent:close", "shutdown",
        "close_notify", "fin", "close" }, w)
      assert.is_true(log.events[3].close_notify)
      assert.is_true(took >= 0.25, "close returned before the server's FIN")
      assert.is_true(run.time_wait(log.local_port, log.peer_port))
    end)

  it("our client: a server that never sends close_notify or FIN; the "
    .. "client ends within linger, clean", function()
      local peer = run.start("server",
        "expect_close:5;send_close:1000:;read_until_fin:5;close",
        { cert = dir .. "/server.pem", key = dir .. "/server.key" })
      local c = assert(ws.connect(wss(peer), tls_client_opts{ linger = 0.5 }))
      local t0 = ws.now()
      local ev = c:close(1000)
      local took = ws.now() - t0
      assert.are.equal("code=1000 name=normal clean=true initiator=local "
        .. "error=nil sent=1000/ received=1000/", row(ev))
      assert.is_true(took >= 0.45 and took < 2, "took " .. took)
      assert.are.same({ "close:1000", "sent:close", "close_notify", "fin",
        "close" }, words(peer:log()))
    end)

  it("our server: close_notify and FIN right after the handshake; clean",
    function()
      local ev
      local srv = assert(ws.listen{ host = "127.0.0.1", port = 0,
        tls = { cert_file = dir .. "/server.pem",
          key_file = dir .. "/server.key" },
        handler = function(conn) ev = conn:close(1000, "bye") end })
      local peer = run.start("client",
        "expect_close:5;send_close:1000:bye;read_until_fin:3;close",
        { port = srv.port, ca = dir .. "/ca.pem" })
      local log = peer:log()
      run.drive_until(function() return ev end)
      srv:close()
      assert.are.equal("code=1000 name=normal clean=true initiator=local "
        .. "error=nil sent=1000/bye received=1000/bye", row(ev))
      assert.are.same({ "close:1000", "sent:close", "close_notify", "fin",
        "close" }, words(log))
      run.drive_until(function()
        return run.time_wait(log.peer_port, log.local_port) or nil
      end)
    end)
end)
