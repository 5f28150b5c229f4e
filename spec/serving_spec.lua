-- Server conveniences on real loopback sockets: server:connections() and
-- count(), routes (404 for the paths they do not name), conn.data, and
-- server:broadcast (framed once, queued without waiting; a connection too
-- far behind is closed with 1013), with 1000 Node `ws` clients and one
-- stalled client that never reads.
local ws = require "ws"
local peers = require "interop.peers"

local function url(server, path)
  return "ws://127.0.0.1:" .. server.port .. (path or "/")
end

-- Run fn in a task and drive the loop until it ends (bounded).
local function run(fn, timeout)
  local done, err = false, nil
  ws.spawn(function()
    local ok, e = pcall(fn)
    done, err = true, (not ok) and e or nil
  end)
  peers.drive("the task", function() if done then return true end end,
    timeout or 20)
  if err then error(err, 0) end
end

describe("server:connections() and count()", function()
  it("lists the open connections, oldest first, and counts them", function()
    local release = false
    local server = assert(ws.listen{ port = 0, handler = function(conn)
      conn:wait(10)
    end })
    run(function()
      local clients = {}
      for i = 1, 3 do
        clients[i] = assert(ws.connect(url(server, "/" .. i)))
      end
      peers.drive("three connections", function()
        if server:count() == 3 then return true end
      end, 5)
      local paths = {}
      for conn in server:connections() do
        paths[#paths + 1] = conn.request.path
      end
      assert.are.same({ "/1", "/2", "/3" }, paths)
      -- closing inside the loop is safe; closed ones are not listed
      for conn in server:connections() do
        if conn.request.path == "/2" then conn:close() end
      end
      assert.are.equal(2, server:count())
      paths = {}
      for conn in server:connections() do
        paths[#paths + 1] = conn.request.path
      end
      assert.are.same({ "/1", "/3" }, paths)
      for i = 1, 3 do clients[i]:close() end
      peers.drive("no connections", function()
        if server:count() == 0 then return true end
      end, 5)
      assert.is_nil(server:connections()())
      release = true
    end)
    assert.is_true(release)
    server:close()
  end)
end)

describe("conn.data", function()
  it("is a table of the application's, one per connection", function()
    local seen = {}
    local server = assert(ws.listen{ port = 0, handler = function(conn)
      conn.data.name = conn.request.path
      local d = conn:receive(5)
      seen[#seen + 1] = conn.data.name .. ":" .. tostring(d)
    end })
    run(function()
      local a = assert(ws.connect(url(server, "/a")))
      local b = assert(ws.connect(url(server, "/b")))
      assert.are.same({}, a.data)
      assert.are_not.equal(a.data, b.data)
      a.data.x = 1
      assert.are.equal(1, a.data.x)
      assert.is_true(a:send("1"))
      assert.is_true(b:send("2"))
      a:wait(5)
      b:wait(5)
    end)
    table.sort(seen)
    assert.are.same({ "/a:1", "/b:2" }, seen)
    server:close()
  end)
end)

describe("routes", function()
  it("runs the handler of the request's path and refuses others with 404",
      function()
    local server = assert(ws.listen{ port = 0, routes = {
      ["/chat"] = function(conn) conn:send("chat") end,
      ["/feed"] = function(conn, req) conn:send("feed " .. req.path) end,
    } })
    run(function()
      local c = assert(ws.connect(url(server, "/chat")))
      assert.are.equal("chat", c:receive(5))
      c:close()
      c = assert(ws.connect(url(server, "/feed?since=3")))
      assert.are.equal("feed /feed?since=3", c:receive(5))
      c:close()
      local conn, _, ev = ws.connect(url(server, "/other"))
      assert.is_nil(conn)
      assert.are.same({ 1006, "http", 404 },
        { ev.code, ev.error, ev.http_status })
    end)
    server:close()
  end)

  it("sends the paths routes does not name to handler", function()
    local server = assert(ws.listen{ port = 0,
      routes = { ["/a"] = function(conn) conn:send("route") end },
      handler = function(conn, req) conn:send("handler " .. req.path) end })
    run(function()
      local c = assert(ws.connect(url(server, "/a")))
      assert.are.equal("route", c:receive(5))
      c:close()
      c = assert(ws.connect(url(server, "/b")))
      assert.are.equal("handler /b", c:receive(5))
      c:close()
    end)
    server:close()
  end)

  it("raises on bad routes, naming the option", function()
    assert.error_matches(function() ws.listen{ port = 0 } end,
      "bad argument #1 to 'listen' (option 'handler': function expected, got nil)",
      nil, true)
    assert.error_matches(function()
      ws.listen{ port = 0, routes = { chat = function() end } }
    end, "option 'routes': table of [\"/path\"] = function expected", nil, true)
    assert.error_matches(function()
      ws.listen{ port = 0, routes = { ["/x"] = "handler" } }
    end, "option 'routes': table of [\"/path\"] = function expected", nil, true)
  end)
end)

describe("server:broadcast", function()
  it("sends to every open connection but `except`, framed once", function()
    local server = assert(ws.listen{ port = 0, handler = function(conn)
      conn:wait(10)
    end, deflate = true })
    run(function()
      local a = assert(ws.connect(url(server)))
      local b = assert(ws.connect(url(server), { deflate = false }))
      local c = assert(ws.connect(url(server)))
      assert.are.same({ "permessage-deflate" }, (function()
        local t = {}
        for k in pairs(a.extensions) do t[#t + 1] = k end
        return t
      end)())
      peers.drive("three connections", function()
        if server:count() == 3 then return true end
      end, 5)
      local n, skipped = server:broadcast("hello all")
      assert.are.equal(3, n)
      assert.is_nil(skipped)
      local blob = ("\0\1\2"):rep(1000)
      local sender
      for conn in server:connections() do sender = sender or conn end
      n, skipped = server:broadcast(blob, "binary", { except = sender })
      assert.are.equal(2, n)
      assert.is_nil(skipped)
      for i, conn in ipairs({ a, b, c }) do
        assert.are.same({ "hello all", "text" }, { conn:receive(5) })
        if i > 1 then
          assert.are.same({ blob, "binary" }, { conn:receive(5) })
        end
      end
      -- a connection with deflate agreed got it uncompressed
      assert.are.equal(0, a:deflate_stats().rx_wire)
      a:close() b:close() c:close()
    end)
    server:close()
  end)

  it("refuses text that is not UTF-8 and raises on bad arguments", function()
    local server = assert(ws.listen{ port = 0, handler = function() end })
    assert.are.same({ nil, "text is not valid UTF-8" },
      { server:broadcast("\255") })
    assert.error_matches(function() server:broadcast(1) end,
      "bad argument #1 to 'broadcast' (string expected, got number)", nil,
      true)
    assert.error_matches(function() server:broadcast("x", "json") end,
      "bad argument #2 to 'broadcast' (\"text\" or \"binary\" expected, got \"json\")",
      nil, true)
    assert.error_matches(function()
      server:broadcast("x", "text", { max_behind = 0 })
    end, "bad argument #3 to 'broadcast' (option 'max_behind': positive integer expected, got 0)",
      nil, true)
    assert.error_matches(function()
      server:broadcast("x", "text", { except = {} })
    end, "bad argument #3 to 'broadcast' (option 'except': ws connection expected, got table)",
      nil, true)
    assert.error_matches(function()
      server:broadcast("x", "text", { to = 1 })
    end, "bad argument #3 to 'broadcast' (unknown option 'to')", nil, true)
    server:close()
  end)

  it("reaches 1000 Node ws clients in order and closes a stalled one " ..
      "with 1013", function()
    local N, SIZE = 1000, 1024
    local stalled_event
    local server = assert(ws.listen{ port = 0, max_connections = 2000,
      close_timeout = 1,
      handler = function(conn, req)
        conn:wait(60)
        if req.path == "/stalled" then stalled_event = conn.close_event end
      end })
    local fan = peers.start({ "node", "spec/interop/node_fanout.js",
      url(server, "/fan"), tostring(N) })
    -- a client that completes the handshake with a tiny receive buffer
    -- and then never reads
    local stall = peers.start({ "/usr/bin/python3", "-c", [[
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /stalled HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print(head.split(b"\r\n")[0].decode(), flush=True)
time.sleep(60)
]], tostring(server.port) })
    local ok, err = pcall(function()
      fan:wait_line("open " .. N, 40)
      assert.are.equal("HTTP/1.1 101 Switching Protocols",
        stall:wait_prefix("HTTP/1.1 101", 10) and
        "HTTP/1.1 101 Switching Protocols")
      peers.drive("every connection", function()
        if server:count() == N + 1 then return true end
      end, 10)
      local stalled
      for conn in server:connections() do
        if conn.request.path == "/stalled" then stalled = conn end
      end
      assert.is_not_nil(stalled)
      -- fill the kernel's buffers towards the stalled client first (a few
      -- MiB on loopback), so that broadcasts soon wait in its engine
      local filler = ("f"):rep(256 * 1024)
      for _ = 1, 100 do
        if stalled:buffered_amount() > 0 then break end
        assert.is_true(stalled:send(filler, "binary"))
      end
      assert.is_true(stalled:buffered_amount() > 0)
      local max_behind = 64 * 1024
      local sent_total, behind_at = 0, nil
      for i = 1, 200 do
        local head = "bcast " .. i .. " "
        local n, skipped = server:broadcast(head .. ("."):rep(SIZE - #head),
          "text", { max_behind = max_behind })
        sent_total = sent_total + n
        if skipped then
          -- only the stalled connection is ever behind
          local k, why = next(skipped)
          assert.are.equal(stalled, k)
          assert.are.equal("behind", why)
          assert.is_nil(next(skipped, k))
          assert.are.equal(N, n)
          behind_at = i
          break
        end
        assert.are.equal(N + 1, n)
        -- the readers keep up: nothing waits in any engine but the
        -- stalled one's when the next broadcast starts
        peers.drive("the readers", function()
          for conn in server:connections() do
            if conn ~= stalled and conn:buffered_amount() > 0 then return nil end
          end
          return true
        end, 10)
      end
      assert.is_not_nil(behind_at, "the stalled client never fell behind")
      -- it never gets a message late: broadcasts after that skip it
      local head = "bcast " .. (behind_at + 1) .. " "
      local n = server:broadcast(head .. ("."):rep(SIZE - #head), "text",
        { max_behind = max_behind })
      assert.are.equal(N, n)
      peers.drive("the stalled connection's close", function()
        return stalled_event
      end, 20)
      -- our close frame (1013 "too far behind") waits behind what the
      -- peer never read, so the closing handshake times out; nothing is
      -- lost silently: the close event lists every message not written,
      -- the last one the broadcast before the one it missed
      assert.are.same({ 1006, "close_timeout", "local", false },
        { stalled_event.code, stalled_event.error, stalled_event.initiator,
          stalled_event.clean })
      local unsent = stalled_event.unsent
      if stalled_event.sent then
        -- the kernel's buffers grew and took every byte after all
        assert.are.same({ code = 1013, reason = "too far behind" },
          stalled_event.sent)
        assert.are.same({}, unsent)
      else
        assert.is_true(#unsent > 0)
        -- the last broadcast it took, or the filler when even the first
        -- found it behind
        local last = behind_at > 1 and "bcast " .. (behind_at - 1) .. " "
          or filler
        assert.are.equal(last, unsent[#unsent].data:sub(1, #last))
      end
      server:close(10)
      local done = fan:wait_prefix("done ", 40)
      local want = behind_at + 1
      assert.are.equal(("conns=%d inorder=%d counts=%d:%d codes=1001:%d")
        :format(N, N, want, N, N), done)
    end)
    fan:stop()
    stall:stop()
    if not server.closed then server:close(1) end
    if not ok then error(err, 0) end
  end)
end)
