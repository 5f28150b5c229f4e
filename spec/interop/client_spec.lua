-- Our client (ws.connect) against real servers: Node `ws` and Python
-- `websockets` (spec/interop/node_server.js, py_server.py). The servers
-- echo, obey "cmd:" text messages and log what they see per request path;
-- see peers.lua. Loopback only; every wait is bounded.
local ws = require "ws"
local peers = require "interop.peers"

local SIZES = { 0, 125, 126, 65535, 65536, 16 * 1024 * 1024 }

-- The fields of a close event that say how it ended.
local function summary(ev)
  return {
    code = ev.code, name = ev.name, reason = ev.reason, clean = ev.clean,
    initiator = ev.initiator, error = ev.error, sent = ev.sent,
    received = ev.received,
  }
end

-- Compare long strings without printing megabytes when they differ.
local function assert_payload(expected, kind, data, got_kind)
  assert.are.equal(kind, got_kind)
  assert.are.equal(#expected, data and #data)
  assert.is_true(data == expected, "payload differs")
end

for _, impl in ipairs({ "node", "python" }) do
  describe("our client against a " .. impl .. " server", function()
    local server
    local opened, count = {}, 0

    lazy_setup(function()
      server = peers.server(impl)
    end)

    lazy_teardown(function()
      if server then server:stop() end
    end)

    after_each(function()
      for i = #opened, 1, -1 do
        if not opened[i].close_event then opened[i]:abort() end
        opened[i] = nil
      end
    end)

    -- A new connection; its path names it in the server's log.
    local function open(opts)
      count = count + 1
      local path = "/client-" .. count
      local conn, err = ws.connect(server.url(path), opts)
      assert(conn, err)
      opened[#opened + 1] = conn
      return conn, path
    end

    it("negotiates the subprotocol the server picks", function()
      local conn, path = open({ protocols = { "other", "chat" } })
      assert.are.equal("chat", conn.protocol)
      server:wait_line("open " .. path .. " chat", 5)
    end)

    it("sends the extra request headers it is given", function()
      local conn = open({ headers = { ["X-Interop"] = "lua-ws 1" } })
      assert.is_true(conn:send("cmd:header X-Interop"))
      assert.are.same({ "header X-Interop lua-ws 1", "text" },
        { conn:receive(5) })
    end)

    for _, kind in ipairs({ "text", "binary" }) do
      for _, size in ipairs(SIZES) do
        it(("round-trips a %d-byte %s message through the server's echo")
            :format(size, kind), function()
          local conn = open()
          local payload = peers.payload(kind, size)
          assert.is_true(conn:send(payload, kind))
          local data, got_kind = conn:receive(20)
          assert_payload(payload, kind, data, got_kind)
        end)

        it(("receives a %d-byte %s message the server generates")
            :format(size, kind), function()
          local conn = open()
          assert.is_true(conn:send(("cmd:send %s %d"):format(kind, size)))
          local data, got_kind = conn:receive(20)
          assert_payload(peers.payload(kind, size), kind, data, got_kind)
        end)
      end
    end

    it("round-trips text of 1- to 4-byte UTF-8 sequences", function()
      local conn = open()
      local payload = peers.payload("utf8", 3000)
      assert.is_true(conn:send(payload))
      assert_payload(payload, "text", conn:receive(5))
    end)

    it("receives UTF-8 text the server sends in 7 fragments", function()
      -- node splits by bytes, inside characters; websockets by characters
      local conn = open()
      assert.is_true(conn:send("cmd:fragment utf8 100 7"))
      assert_payload(peers.payload("utf8", 100), "text", conn:receive(5))
    end)

    it("receives a 65536-byte binary message the server sends in 16 frames",
        function()
      local conn = open()
      assert.is_true(conn:send("cmd:fragment binary 65536 16"))
      assert_payload(peers.payload("binary", 65536), "binary",
        conn:receive(5))
    end)

    it("receives an empty text message sent as 3 empty fragments", function()
      local conn = open()
      assert.is_true(conn:send("cmd:fragment text 0 3"))
      assert.are.same({ "", "text" }, { conn:receive(5) })
    end)

    it("answers the server's ping with a pong carrying its payload",
        function()
      local conn = open()
      local pings = {}
      conn:on("ping", function(_, data) pings[#pings + 1] = data end)
      assert.is_true(conn:send("cmd:ping are you there"))
      -- the server answers our pong with "pong:<payload>"
      assert.are.same({ "pong:are you there", "text" }, { conn:receive(5) })
      assert.are.same({ "are you there" }, pings)
    end)

    it("gets the server's pong to its ping", function()
      local conn, path = open()
      local rtt = conn:ping("lua ping 1", 5)
      assert.are.equal("number", type(rtt))
      server:wait_line("ping " .. path .. " lua ping 1", 5)
    end)

    it("closes with an application code and reason the server receives",
        function()
      local conn, path = open()
      local ev = conn:close(4001, "bye from lua")
      assert.are.same({
        code = 4001, reason = "bye from lua", clean = true,
        initiator = "local",
        sent = { code = 4001, reason = "bye from lua" },
        received = { code = 4001, reason = "bye from lua" },
      }, summary(ev))
      server:wait_line("close " .. path .. " 4001 bye from lua", 5)
    end)

    it("closes with a code given by name", function()
      local conn, path = open()
      local ev = conn:close("going_away")
      assert.are.same({
        code = 1001, name = "going_away", reason = "", clean = true,
        initiator = "local",
        sent = { code = 1001, reason = "" },
        received = { code = 1001, reason = "" },
      }, summary(ev))
      server:wait_line("close " .. path .. " 1001 ", 5)
    end)

    it("reports the server's close code and reason in its close event",
        function()
      local conn, path = open()
      assert.is_true(conn:send("cmd:close 4002 server says bye"))
      local data, err, ev = conn:receive(5)
      assert.are.same({ nil, "closed" }, { data, err })
      assert.are.same({
        code = 4002, reason = "server says bye", clean = true,
        initiator = "remote",
        sent = { code = 4002, reason = "" }, -- the reply echoes the code
        received = { code = 4002, reason = "server says bye" },
      }, summary(ev))
      assert.are.equal(ev, conn.close_event)
      -- the server logs the close frame it received: our reply
      server:wait_line("close " .. path .. " 4002 ", 5)
    end)

    if impl == "node" then
      -- websockets always sends a code when it closes
      it("reports 1005 no_status for the server's close frame without a code",
          function()
        local conn = open()
        assert.is_true(conn:send("cmd:close"))
        local _, _, ev = conn:receive(5)
        assert.are.same({
          code = 1005, name = "no_status", reason = "", clean = true,
          initiator = "remote", received = { code = 1005, reason = "" },
          sent = ev.sent, -- what we echo for "no code" is our business
        }, summary(ev))
      end)
    end

    it("reports 1006 abnormal when the server drops TCP without a close",
        function()
      local conn = open()
      assert.is_true(conn:send("cmd:terminate"))
      local _, err, ev = conn:receive(5)
      assert.are.equal("closed", err)
      assert.are.same({
        code = 1006, name = "abnormal", reason = "", clean = false,
        initiator = "transport", error = "eof",
      }, summary(ev))
    end)

    it("fails a message one byte over the default 16 MiB limit with 1009",
        function()
      local conn = open()
      assert.is_true(conn:send("cmd:send binary 16777217"))
      local _, err, ev = conn:receive(20)
      assert.are.equal("closed", err)
      assert.are.same({ code = 1009, name = "message_too_big", clean = false,
        initiator = "local", error = "protocol:message_too_big",
        sent_code = 1009 },
        { code = ev.code, name = ev.name, clean = ev.clean,
          initiator = ev.initiator, error = ev.error,
          sent_code = ev.sent and ev.sent.code })
    end)

    it("reports the server's 1009 when the server refuses a message over "
        .. "its limit", function()
      local limited = peers.server(impl, { max_payload = 1024 * 1024 })
      finally(function() limited:stop() end)
      local conn, err = ws.connect(limited.url("/limited"))
      assert(conn, err)
      opened[#opened + 1] = conn
      assert.is_true(conn:send(peers.payload("binary", 2 * 1024 * 1024),
        "binary"))
      local _, closed, ev = conn:receive(10)
      assert.are.equal("closed", closed)
      assert.are.same({ code = 1009, name = "message_too_big", clean = true,
        initiator = "remote", received_code = 1009 },
        { code = ev.code, name = ev.name, clean = ev.clean,
          initiator = ev.initiator, received_code = ev.received.code })
    end)

    it("delivers its 1009 close frame to the server after an oversized "
        .. "message", function()
      -- the rest of the message is still arriving when we fail: closing
      -- TCP at once would reset the connection and lose our close frame
      local conn, path = open()
      assert.is_true(conn:send("cmd:send binary 16777217"))
      local _, err, ev = conn:receive(20)
      assert.are.equal("closed", err)
      assert.are.equal(1009, ev.code)
      server:wait_line("close " .. path .. " 1009 protocol:message_too_big", 10)
    end)
  end)
end
