-- ws.resty in a real nginx (Debian's nginx with lua-nginx-module, which
-- runs LuaJIT): a generated configuration on loopback ports, served by
-- spec/support/resty_app.lua. Our client, Node `ws` and Python
-- `websockets` clients against its locations, and its client (inside
-- nginx) against nginx itself, Node, Python, our server and a misbehaving
-- peer. Every wait is bounded.
local ws = require "ws"
local nginx = require "support.nginx"
local peers = require "interop.peers"
local wire = require "support.wire"
local raw_peer = require "support.raw_peer"
local drive = require "support.drive"

local MiB = 1024 * 1024

local BODY = [[
  location /echo/ {
    content_by_lua_block { require("support.resty_app").commands() }
  }
  location /hb/ {
    content_by_lua_block {
      require("support.resty_app").commands{
        heartbeat = { interval = 0.2, timeout = 0.4 } }
    }
  }
  location /small/ {
    content_by_lua_block {
      require("support.resty_app").commands{ max_message_size = 1024 }
    }
  }
  location = /handlers {
    content_by_lua_block { require("support.resty_app").handlers() }
  }
  location = /refuse {
    content_by_lua_block { require("support.resty_app").refuse() }
  }
  location = /seen {
    content_by_lua_block { require("support.resty_app").seen() }
  }
  location = /errors {
    content_by_lua_block { require("support.resty_app").errors() }
  }
  location = /client {
    content_by_lua_block { require("support.resty_app").client() }
  }
]]

local function lines_of(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

local function urlencode(s)
  return (s:gsub("[^%w%-._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

local function upgrade_request(path)
  return ws.handshake.request{ host = "127.0.0.1", path = path,
    key = "dGhlIHNhbXBsZSBub25jZQ==" }
end

-- The frames after the 101 head of a raw exchange.
local function frames_after_head(got)
  local head_end = got:find("\r\n\r\n", 1, true)
  assert(head_end, "no HTTP head in: " .. got:sub(1, 200))
  assert.matches("^HTTP/1.1 101 ", got)
  return wire.parse(got:sub(head_end + 4))
end

if not nginx.available() then
  error("nginx with lua-nginx-module is not installed: run .ci/deps.sh nginx")
end

describe("ws.resty in nginx", function()
  local server, certs
  local count = 0

  lazy_setup(function()
    certs = peers.certs()
    server = nginx.start(BODY, {
      ssl = { cert = certs .. "/server.pem", key = certs .. "/server.key" },
      ipv6 = true, http2 = true,
      http = "lua_shared_dict seen 4m;\n"
        .. "lua_ssl_trusted_certificate " .. certs .. "/ca.pem;\n"
        .. "lua_ssl_verify_depth 3;",
    })
  end)

  lazy_teardown(function()
    local log = server and server:error_log() or ""
    if server then server:stop() end
    peers.remove_dir(certs)
    -- nothing in nginx crashed or raised
    assert.is_nil(log:match("[^\n]*runtime error[^\n]*"))
    assert.is_nil(log:match("[^\n]*%[alert%][^\n]*"))
    assert.is_nil(log:match("[^\n]*%[crit%][^\n]*"))
  end)

  local function fresh(prefix)
    count = count + 1
    return (prefix or "/echo/") .. "t" .. count
  end

  -- What resty_app recorded for a path, once it recorded the close.
  local function seen(path)
    local text
    drive.until_true(function()
      text = server:get("/seen?path=" .. urlencode(path))
      return text:find("\nclose ", 1, true) ~= nil
    end, 10)
    return lines_of(text)
  end

  describe("serving our client", function()
    it("echoes 0 B to 16 MiB, text and binary, with the chosen subprotocol",
        function()
      local path = fresh()
      local conn = assert(ws.connect(server:url(path), { protocols = { "chat" },
        max_message_size = 64 * MiB }))
      assert.are.equal("chat", conn.protocol)
      local sizes = { 0, 125, 126, 65535, 65536, 16 * MiB }
      for _, size in ipairs(sizes) do
        for _, kind in ipairs({ "text", "binary" }) do
          local msg = peers.payload(kind, size)
          assert.is_true(conn:send(msg, kind))
          local data, got_kind = conn:receive(20)
          assert.are.equal(kind, got_kind)
          assert.is_true(data == msg, kind .. " " .. size .. " differs")
        end
      end
      local utf8 = peers.payload("utf8", 1000)
      conn:send(utf8)
      assert.are.equal(utf8, (conn:receive(5)))
      conn:close()
      local rec = seen(path)
      assert.are.equal("protocol chat", rec[1])
      assert.are.equal("text 0", rec[2])
      assert.are.equal("binary " .. 16 * MiB, rec[13])
      assert.are.equal("text " .. #utf8, rec[14])
    end)

    it("reassembles fragments from the client and fragments to it",
        function()
      local path = fresh()
      local conn = assert(ws.connect(server:url(path)))
      local text = peers.payload("utf8", 200)
      conn:send(text, "text", { fragment = 5 }) -- cuts inside characters
      assert.are.equal(text, (conn:receive(5)))
      local bin = peers.payload("binary", 100000)
      conn:send(bin, "binary", { fragment = 4096 })
      assert.is_true(bin == conn:receive(5))
      -- the server sends 3000 bytes in 7-byte frames
      local sample = peers.payload("text", 3000)
      conn:send("cmd:frag 7 " .. sample)
      assert.are.equal(sample, (conn:receive(5)))
      conn:close()
      local rec = seen(path)
      assert.are.same({ "text " .. #text, "binary 100000" },
        { rec[2], rec[3] })
    end)

    it("answers our ping and pings us", function()
      local path = fresh()
      local conn = assert(ws.connect(server:url(path)))
      local pings = {}
      conn:on("ping", function(_, data) pings[#pings + 1] = data end)
      assert.is_number(conn:ping("from lua", 5))
      conn:send("cmd:ping from nginx")
      assert.are.equal("pinged from nginx ok", (conn:receive(5)))
      assert.are.same({ "from nginx" }, pings)
      conn:close()
    end)

    it("reports our close code and reason on both sides", function()
      local path = fresh()
      local conn = assert(ws.connect(server:url(path)))
      local ev = conn:close(4003, "client bye")
      assert.are.equal(4003, ev.code)
      assert.is_true(ev.clean)
      assert.are.equal("local", ev.initiator)
      assert.are.same({ code = 4003, reason = "" }, ev.received)
      local rec = seen(path)
      assert.are.equal("close code=4003 name=nil reason=client bye "
        .. "clean=true initiator=remote error=nil sent=4003/ "
        .. "received=4003/client bye unsent=0", rec[#rec])
    end)

    it("closes with the server's code and reason", function()
      local path = fresh()
      local conn = assert(ws.connect(server:url(path)))
      local named
      conn:on("close:going_away", function(_, e) named = e.reason end)
      conn:send("cmd:close 1001 server bye")
      local data, err, ev = conn:receive(5)
      assert.is_nil(data)
      assert.are.equal("closed", err)
      assert.are.equal(1001, ev.code)
      assert.are.equal("going_away", ev.name)
      assert.are.equal("server bye", ev.reason)
      assert.are.equal("remote", ev.initiator)
      assert.is_true(ev.clean)
      assert.are.equal("server bye", named)
      local rec = seen(path)
      assert.are.equal("close code=1001 name=going_away reason=server bye "
        .. "clean=true initiator=local error=nil sent=1001/server bye "
        .. "received=1001/ unsent=0", rec[#rec])
    end)

    it("fails a protocol violation with 1002", function()
      local path = fresh()
      -- RSV1 without an extension
      local got = drive.raw_exchange(server.port, upgrade_request(path)
        .. wire.frame{ rsv = 4, payload = "x", key = wire.KEY })
      local frames = frames_after_head(got)
      assert.are.equal(1, #frames)
      assert.are.equal(8, frames[1].opcode)
      assert.are.equal(wire.close_payload(1002, "protocol:rsv_bits"),
        frames[1].payload)
      local rec = seen(path)
      assert.matches("^close code=1002 name=protocol_error ", rec[#rec])
    end)

    it("fails invalid UTF-8 with 1007 and an unmasked frame with 1002",
        function()
      local path = fresh()
      local got = drive.raw_exchange(server.port, upgrade_request(path)
        .. wire.frame{ payload = "\237\160\128", key = wire.KEY })
      local frames = frames_after_head(got)
      assert.are.equal(1007, frames[1].payload:byte(1) * 256
        + frames[1].payload:byte(2))
      path = fresh()
      got = drive.raw_exchange(server.port, upgrade_request(path)
        .. wire.frame{ payload = "unmasked" })
      frames = frames_after_head(got)
      assert.are.equal(1002, frames[1].payload:byte(1) * 256
        + frames[1].payload:byte(2))
    end)

    it("closes with 1009 on a message over max_message_size", function()
      local path = fresh("/small/")
      local conn = assert(ws.connect(server:url(path)))
      conn:send(("x"):rep(1024))
      assert.are.equal(1024, #conn:receive(5))
      conn:send(("x"):rep(1025))
      local _, err, ev = conn:receive(5)
      assert.are.equal("closed", err)
      assert.are.same({ 1009, "message_too_big", "remote" },
        { ev.code, ev.name, ev.initiator })
      local rec = seen(path)
      assert.matches("^close code=1009 name=message_too_big reason= "
        .. "clean=false initiator=local error=protocol:message_too_big ",
        rec[#rec])
    end)

    it("takes frames sent in the same packet as the request", function()
      local path = fresh()
      local got = drive.raw_exchange(server.port, upgrade_request(path)
        .. wire.frame{ payload = "early", key = wire.KEY }
        .. wire.frame{ opcode = 9, payload = "p", key = wire.KEY }, 1)
      local frames = frames_after_head(got)
      assert.are.equal(2, #frames)
      -- the pong goes out as the bytes are read, before the handler's echo
      assert.are.same({ 10, "p" }, { frames[1].opcode, frames[1].payload })
      assert.are.same({ 1, "early" }, { frames[2].opcode, frames[2].payload })
    end)

    it("drops the connection on abort: we see 1006", function()
      local path = fresh()
      local conn = assert(ws.connect(server:url(path)))
      conn:send("cmd:abort")
      local _, err, ev = conn:receive(5)
      assert.are.equal("closed", err)
      assert.are.equal(1006, ev.code)
      assert.are.equal("abnormal", ev.name)
      assert.is_false(ev.clean)
      local rec = seen(path)
      assert.matches("^close code=1006 name=abnormal .* error=aborted ",
        rec[#rec])
    end)

    it("lets a writer thread send while the reader echoes", function()
      local path = fresh()
      local conn = assert(ws.connect(server:url(path)))
      conn:send("cmd:ticks 300")
      for i = 1, 50 do conn:send("echo " .. i) end
      local ticks, echoes = {}, {}
      for _ = 1, 350 do
        local data = conn:receive(5)
        if not data then break end
        if data:match("^tick ") then ticks[#ticks + 1] = data
        else echoes[#echoes + 1] = data end
      end
      assert.are.equal(300, #ticks)
      assert.are.equal(50, #echoes)
      for i = 1, 300 do assert.are.equal("tick " .. i, ticks[i]) end
      for i = 1, 50 do assert.are.equal("echo " .. i, echoes[i]) end
      conn:close()
      local rec = seen(path)
      assert.are.equal("writer true 300", rec[#rec - 1])
    end)

    it("runs on(\"message\") and close:<name> handlers", function()
      local path = "/handlers"
      local conn = assert(ws.connect(server:url(path)))
      conn:send("via handler")
      assert.are.equal("via handler", (conn:receive(5)))
      conn:close("going_away")
      local rec = seen(path)
      assert.are.same({ "receive false cannot receive: this connection's "
        .. "messages go to its on(\"message\") handlers (wait for the close "
        .. "with conn:wait())", "going_away handler 1001",
        "close code=1001 name=going_away reason= clean=true "
        .. "initiator=remote error=nil sent=1001/ received=1001/ unsent=0" },
        rec)
    end)

    it("refuses by authorize with the status and headers it returns",
        function()
      local conn, msg, ev = ws.connect(server:url("/refuse"))
      assert.is_nil(conn)
      assert.are.equal("server answered HTTP 403 instead of 101", msg)
      assert.are.equal(403, ev.http_status)
      assert.are.equal("no /refuse", ev.http_headers["x-reason"])
    end)

    it("answers a request that is not an upgrade with 400", function()
      local got = drive.raw_exchange(server.port,
        "GET /echo/plain HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.matches("^HTTP/1.1 400 ", got)
      got = drive.raw_exchange(server.port, (upgrade_request("/echo/v")
        :gsub("Sec%-WebSocket%-Version: 13", "Sec-WebSocket-Version: 8")))
      assert.matches("^HTTP/1.1 426 ", got)
      assert.matches("\r\nSec%-WebSocket%-Version: 13\r\n", got)
    end)

    it("answers an HTTP/2 request with 426: it has no head to upgrade",
        function()
      local got = server:get("/echo/h2", { port = server.h2_port,
        curl = "--http2-prior-knowledge -o /dev/null -w '%{http_version} "
          .. "%{http_code}'" })
      assert.are.equal("2 426", got)
    end)

    it("pings on its heartbeat and fails a silent peer", function()
      local conn = assert(ws.connect(server:url(fresh("/hb/"))))
      local pings = 0
      conn:on("ping", function() pings = pings + 1 end)
      drive.run(function() ws.sleep(0.9) end)
      assert.is_true(pings >= 2, "pings: " .. pings)
      assert.are.equal("open", conn.state)
      conn:close()
      -- a peer that never answers: 1006 heartbeat_timeout, 1011 sent
      local path = fresh("/hb/")
      local got = drive.raw_exchange(server.port, upgrade_request(path), 5)
      local frames = frames_after_head(got)
      local last = frames[#frames]
      assert.are.equal(8, last.opcode)
      assert.are.equal(wire.close_payload(1011, "heartbeat timeout"),
        last.payload)
      local rec = seen(path)
      assert.matches("^close code=1006 name=abnormal .*"
        .. "error=heartbeat_timeout sent=1011/heartbeat timeout", rec[#rec])
    end)
  end)

  it("raises errors that name the bad argument", function()
    local lines = lines_of(server:get("/errors"))
    local at = "^[^\n]*/spec/support/resty_app%.lua:%d+: "
    local want = {
      "bad argument #1 to 'connect' (string expected, got number)",
      "bad argument #1 to 'connect' (unsupported scheme 'http' (ws, wss, "
        .. "ws+unix or wss+unix expected))",
      "bad argument #2 to 'connect' (unknown option 'bogus')",
      "bad argument #2 to 'connect' (option 'timeout': positive number "
        .. "expected, got -1)",
      "bad argument #2 to 'connect' (unknown option 'tls.foo')",
      "bad argument #2 to 'connect' (option 'heartbeat.interval': positive "
        .. "number expected, got 0)",
      "bad argument #2 to 'connect' (invalid header name \"Bad Name\")",
      "bad argument #1 to 'serve' (option 'handler': function expected, got "
        .. "nil)",
      "bad argument #1 to 'upgrade' (option 'authorize': function expected, "
        .. "got number)",
      "bad argument #1 to 'upgrade' (table expected, got string)",
      "bad argument #1 to 'send' (string or function expected, got number)",
      "bad argument #3 to 'send' (option 'fragment': positive integer "
        .. "expected, got 0)",
      false, -- a return, below
      "bad argument #1 to 'receive' (number or table expected, got string)",
      "bad argument #1 to 'close' (close code 999 may not be sent)",
      "bad argument #2 to 'close' (string expected, got number)",
      "bad argument #2 to 'close' (close reason is not valid UTF-8)",
      "bad argument #2 to 'close' (reason is 124 bytes, at most 123 "
        .. "allowed)",
      false, -- a send after them: returned true
      "bad argument #1 to 'on' (unknown event nope)",
      "bad argument #2 to 'on' (function expected, got number)",
      "bad argument #1 to 'ping' (string expected, got number)",
      "bad self (ws connection expected)", -- one connection class now
    }
    assert.are.equal(#want + 1, #lines, table.concat(lines, "\n"))
    for i, msg in ipairs(want) do
      if msg then
        assert.matches(at, lines[i])
        assert.are.equal(msg, lines[i]:gsub(at, ""))
      end
    end
    assert.are.equal("returned nil text is not valid UTF-8", lines[13])
    assert.are.equal("returned true nil", lines[19])
    assert.are.equal("returned nil closed", lines[#lines])
  end)

  -- The closing handshake on the wire (the nginx rows of the table in
  -- doc/closing.md; the loop's are in spec/closing_spec.lua): a scripted
  -- peer records frames and the order of close frames and FINs.
  describe("closing on the wire", function()
    local run = require "support.wire_run"

    local function last_close(lines)
      return lines[#lines]:match("^close (.*)$")
    end

    -- A wire_peer client on a fresh /echo/ path: its log and what nginx
    -- recorded for the path.
    local function serve(script)
      local path = fresh()
      local peer = run.start("client", script,
        { port = server.port, path = path })
      local log = peer:log()
      return log, seen(path)
    end

    it("server, local close: our FIN follows the handshake, clean",
      function()
        local log, lines = serve("send_text:cmd:close 1000 bye;"
          .. "expect_close:5;send_close:1000:bye;read_until_fin:3;close")
        assert.are.same({ "sent:text", "close:1000", "sent:close", "fin",
          "close" }, run.words(log))
        assert.are.equal("code=1000 name=normal reason=bye clean=true "
          .. "initiator=local error=nil sent=1000/bye received=1000/bye "
          .. "unsent=0", last_close(lines))
      end)

    it("server, peer close: answered, then our FIN, clean", function()
      local log, lines = serve("send_close:1001:going;expect_close:5;"
        .. "read_until_fin:3;close")
      assert.are.same({ "sent:close", "close:1001", "fin", "close" },
        run.words(log))
      assert.are.equal("code=1001 name=going_away reason=going clean=true "
        .. "initiator=remote error=nil sent=1001/ received=1001/going "
        .. "unsent=0", last_close(lines))
    end)

    it("server, protocol error we detect: 1002, nothing after it, our FIN",
      function()
        local log, lines = serve("send_raw:810161;expect_close:5;"
          .. "read_until_fin:3;close")
        assert.are.same({ "sent:raw", "close:1002", "fin", "close" },
          run.words(log))
        assert.are.equal("code=1002 name=protocol_error reason= "
          .. "clean=false initiator=local error=protocol:unmasked_frame "
          .. "sent=1002/protocol:unmasked_frame received=- unsent=0",
          last_close(lines))
      end)

    local SERVER_ENDS = "read:0.3;shutdown;read_until_fin:3;close"

    local function client(script, mode, extra)
      local peer = run.start("server", script)
      local lines = lines_of(server:get(("/client?mode=%s&url=%s%s")
        :format(mode, urlencode("ws://127.0.0.1:" .. peer.port .. "/"),
          extra or "")))
      return peer:log(), lines
    end

    it("client, local close: waits for the server's FIN, clean", function()
      local log, lines = client("expect_close:5;send_close:1000:bye;"
        .. SERVER_ENDS, "close")
      assert.are.same({ "close:1000", "sent:close", "shutdown", "fin",
        "close" }, run.words(log))
      assert.are.equal("close code=1000 name=normal reason=bye clean=true "
        .. "initiator=local error=nil sent=1000/bye received=1000/bye "
        .. "unsent=0", lines[2])
      assert.is_true(run.time_wait(log.local_port, log.peer_port))
    end)

    it("client, peer close: answered, the server's FIN first, clean",
      function()
        local log, lines = client("send_close:1001:going;expect_close:5;"
          .. SERVER_ENDS, "wait")
        assert.are.same({ "sent:close", "close:1001", "shutdown", "fin",
          "close" }, run.words(log))
        assert.are.same({ "open nil", "receive closed",
          "close code=1001 name=going_away reason=going clean=true "
          .. "initiator=remote error=nil sent=1001/ received=1001/going "
          .. "unsent=0" }, lines)
      end)

    it("client, the server never closes TCP: ends within linger, clean",
      function()
        local log, lines = client("expect_close:5;send_close:1000:;"
          .. "read_until_fin:5;close", "close", "&linger=0.5")
        assert.are.same({ "close:1000", "sent:close", "fin", "close" },
          run.words(log))
        assert.are.equal("close code=1000 name=normal reason=bye clean=true "
          .. "initiator=local error=nil sent=1000/bye received=1000/ "
          .. "unsent=0", lines[2])
        local took = tonumber(lines[3]:match("^took (%S+)$"))
        assert.is_true(took >= 0.4 and took < 2, lines[3])
      end)
  end)

  it("refuses to load outside nginx, naming the alternatives", function()
    local ok, err = pcall(require, "ws.resty")
    assert.is_false(ok)
    assert.matches("ws.resty runs inside OpenResty/nginx %(lua%-nginx%-module%); "
      .. "elsewhere use ws.connect, ws.listen or ws.protocol", err)
  end)

  for _, impl in ipairs({ "node", "python" }) do
    describe("serving a " .. impl .. " client", function()
      it("serves 200 of its connections at once, 20 messages each",
          function()
        local lines = peers.run_client(impl, server:url("/echo/many"),
          { "many 200 20" }, { timeout = 60 })
        assert.are.same({ "many 200 20: ok=4000 bad=0 closed=200" }, lines)
      end)

      it("echoes to 16 MiB, fragments, pings and closes both ways",
          function()
        local lines = peers.run_client(impl, server:url(fresh()), {
          "echo text 0", "echo binary 125", "echo text 65536",
          "echo binary 16777216", "echo utf8 3000",
          "fragment utf8 100 7", "fragment binary 65536 16",
          "ping hello there", "send cmd:ping from nginx", "recv",
          "close 4003 client bye",
        }, { protocol = "chat", timeout = 60 })
        assert.are.same({
          "echo text 0: text 0 ok",
          "echo binary 125: binary 125 ok",
          "echo text 65536: text 65536 ok",
          "echo binary 16777216: binary 16777216 ok",
          "echo utf8 3000: text 69000 ok",
          "fragment utf8 100 7: text 2300 ok",
          "fragment binary 65536 16: binary 65536 ok",
          "pong hello there",
          "got-ping from nginx",
          "recv text 20 pinged from nginx ok",
          "closed 4003 ",
        }, lines)
        lines = peers.run_client(impl, server:url(fresh()), {
          "send cmd:close 4004 server bye", "wait-close" })
        assert.are.same({ "closed 4004 server bye" }, lines)
      end)
    end)
  end

  describe("its client, inside nginx", function()
    local function run_client(url, mode, extra)
      return lines_of(server:get(("/client?mode=%s&url=%s%s"):format(mode,
        urlencode(url), extra or "")))
    end

    local ECHOED = {
      "echo binary 0: binary ok", "echo binary 125: binary ok",
      "echo binary 126: binary ok", "echo binary 65535: binary ok",
      "echo binary 65536: binary ok", "echo binary 16777216: binary ok",
      "fragmented text 4800: text ok", "ping ok",
    }

    local function expect_echo(lines, protocol, received_reason)
      local want = { "open " .. protocol }
      for _, l in ipairs(ECHOED) do want[#want + 1] = l end
      want[#want + 1] = "close code=4002 name=nil reason=resty bye "
        .. "clean=true initiator=local error=nil sent=4002/resty bye "
        .. "received=4002/" .. received_reason .. " unsent=0"
      assert.are.same(want, lines)
    end

    it("talks to nginx itself over ws://", function()
      local path = fresh()
      expect_echo(run_client(server:url(path), "echo", "&protocol=chat"),
        "chat", "")
      local rec = seen(path)
      assert.are.equal("close code=4002 name=nil reason=resty bye "
        .. "clean=true initiator=remote error=nil sent=4002/ "
        .. "received=4002/resty bye unsent=0", rec[#rec])
    end)

    it("talks to nginx itself over wss:// with a verified certificate",
        function()
      -- nginx checks names only, not IP addresses: name the server
      expect_echo(run_client(server:url(fresh(), true), "echo",
        "&server_name=localhost"), "nil", "")
    end)

    it("refuses a certificate for another name with 1015", function()
      local lines = run_client(server:url(fresh(), true), "echo",
        "&server_name=other.example")
      assert.matches("^connect%-failed TLS handshake with 127.0.0.1 failed",
        lines[1])
      assert.matches("^event code=1015 name=tls_handshake .*error=tls ",
        lines[2])
    end)

    for _, impl in ipairs({ "node", "python" }) do
      it("talks to a " .. impl .. " server", function()
        local peer = peers.server(impl)
        local ok, lines = pcall(run_client, peer.url("/"), "echo")
        peer:stop()
        assert(ok, lines)
        -- Node and websockets echo the reason in their close reply
        expect_echo(lines, "nil", "resty bye")
      end)
    end

    it("talks to a node server on a Unix socket (ws+unix:)", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -m 755 " .. dir))
      local peer = peers.server("node", { unix = dir .. "/node.sock" })
      local ok, lines = pcall(run_client, peer.url("/"), "echo")
      peer:stop()
      os.execute("rm -rf " .. dir)
      assert(ok, lines)
      expect_echo(lines, "nil", "resty bye")
    end)

    it("connects over IPv6", function()
      local lines = run_client(("ws://[::1]:%d/echo/v6"):format(
        server.port6), "threads")
      assert.are.same({ "open nil", "threads 200 in order true" },
        { lines[1], lines[2] })
    end)

    it("shares a connection between a writer and a reader thread",
        function()
      assert.are.same({ "open nil", "threads 200 in order true",
        "close code=1000 name=normal reason= clean=true initiator=local "
        .. "error=nil sent=1000/ received=1000/ unsent=0" },
        run_client(server:url(fresh()), "threads"))
    end)

    it("lets a reader, two pingers and a sender above max_buffered wait "
        .. "on one connection", function()
      assert.are.same({ "open nil",
        "waiters sent=20 received=20 pings=ok,ok,ok ok,ok,ok",
        "close code=1000 name=normal reason= clean=true initiator=local "
        .. "error=nil sent=1000/ received=1000/ unsent=0" },
        run_client(server:url(fresh()), "waiters", "&max_buffered=1024"))
    end)

    it("reports our server's close code", function()
      local lserver = assert(ws.listen{ port = 0, handler = function(conn)
        local data = conn:receive(5)
        conn:close(4005, "from " .. tostring(data))
      end })
      local lines = run_client(("ws://127.0.0.1:%d/"):format(lserver.port),
        "wait", "&send=lua")
      lserver:close(1)
      assert.are.same({ "open nil", "receive closed",
        "close code=4005 name=nil reason=from lua clean=true "
        .. "initiator=remote error=nil sent=4005/ "
        .. "received=4005/from lua unsent=0" }, lines)
    end)

    it("fails a masked frame from the server with 1002", function()
      local peer = raw_peer.start(function(p)
        p:write(wire.frame{ payload = "masked", key = wire.KEY })
        p:read_for(1)
      end)
      local lines = run_client(("ws://127.0.0.1:%d/"):format(peer.port),
        "wait")
      assert.are.same({ "open nil", "receive closed",
        "close code=1002 name=protocol_error reason= "
        .. "clean=false initiator=local error=protocol:masked_frame "
        .. "sent=1002/protocol:masked_frame received=- unsent=0" }, lines)
    end)

    it("fails a silent server on its heartbeat", function()
      local peer = raw_peer.start(function(p) p:read_for(3) end)
      local lines = run_client(("ws://127.0.0.1:%d/"):format(peer.port),
        "wait", "&heartbeat=1")
      assert.are.same({ "open nil", "receive closed",
        "close code=1006 name=abnormal reason= clean=false "
        .. "initiator=transport error=heartbeat_timeout "
        .. "sent=1011/heartbeat timeout received=- unsent=0" }, lines)
      -- the peer got our ping, then our 1011
      local frames = wire.parse(peer.received)
      assert.are.same({ 9, 8 }, { frames[1].opcode, frames[#frames].opcode })
      assert.are.equal(wire.close_payload(1011, "heartbeat timeout"),
        frames[#frames].payload)
    end)

    it("lists a message whose write failed in unsent", function()
      local peer = raw_peer.start(function(p)
        p.sock:reset()
        p.sock = nil
      end)
      local lines = run_client(("ws://127.0.0.1:%d/"):format(peer.port),
        "unsent")
      assert.are.same({ "open nil", "send first true nil",
        "send second nil closed" }, { lines[1], lines[2], lines[3] })
      assert.matches("^close code=1006 name=abnormal reason= clean=false "
        .. "initiator=transport error=.* unsent=1$", lines[4])
      assert.are.same({ "unsent text first" }, { lines[5] })
    end)

    it("reports a refused upgrade with its HTTP status", function()
      local lines = run_client(server:url("/refuse"), "echo")
      assert.are.same({ "connect-failed server answered HTTP 403 instead "
        .. "of 101", "event code=1006 name=abnormal reason= clean=false "
        .. "initiator=transport error=http sent=- received=- unsent=0 "
        .. "http_status=403" }, lines)
    end)
  end)
end)
