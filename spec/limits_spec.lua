-- Every limit, hit over real sockets.
local ws = require "ws"
local raw_peer = require "support.raw_peer"

local run = require("support.drive").run

local raw_exchange = require("support.drive").raw_exchange

describe("server limits", function()
  local server
  after_each(function() if server then server:close(1) end end)

  it("answers 431 to a request head over max_header_bytes and closes",
    function()
      server = assert(ws.listen{ port = 0, max_header_bytes = 1024,
        handler = function() end })
      local got = raw_exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\n"
        .. "X-Big: " .. ("a"):rep(2000) .. "\r\n\r\n")
      assert.matches("^HTTP/1.1 431 ", got)
    end)

  it("answers 431 to more headers than max_headers and closes", function()
    server = assert(ws.listen{ port = 0, max_headers = 8,
      handler = function() end })
    local lines = {}
    for i = 1, 20 do lines[i] = "X-H" .. i .. ": v\r\n" end
    local got = raw_exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\n"
      .. table.concat(lines) .. "\r\n")
    assert.matches("^HTTP/1.1 431 ", got)
  end)

  it("drops a client that sends its request one byte at a time at the "
    .. "handshake timeout", function()
    server = assert(ws.listen{ port = 0, handshake_timeout = 0.5,
      handler = function() end })
    local req = ws.handshake.request{ host = "127.0.0.1", path = "/" }
    local sent = 0
    local got, took = raw_exchange(server.port, function(sock)
      -- a byte every 0.1 s: the whole request would take many seconds
      ws.spawn(function()
        for i = 1, #req do
          if not sock:write(req:sub(i, i)) then return end
          sent = i
          ws.sleep(0.1)
        end
      end)
    end, 5)
    assert.are.equal("", got)
    assert.is_true(sent < #req)
    assert.is_true(took >= 0.5 and took < 4, "dropped after " .. took .. " s")
  end)

  it("refuses connections past max_connections with 503", function()
    server = assert(ws.listen{ port = 0, max_connections = 2,
      handler = function(conn) conn:receive(5) end })
    local url = "ws://127.0.0.1:" .. server.port .. "/"
    local a = assert(ws.connect(url))
    local b = assert(ws.connect(url))
    local c, _, ev = ws.connect(url, { timeout = 5 })
    assert.is_nil(c)
    assert.are.same({ 1006, "http", 503 }, { ev.code, ev.error, ev.http_status })
    a:close()
    b:close()
  end)
end)

describe("connection limits", function()
  it("reports 1006 close_timeout when the peer never answers our close",
    function()
      local peer = raw_peer.start(function(p) p:read_for(1) end)
      local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
        { close_timeout = 0.2 }))
      local t0 = ws.now()
      local ev = conn:close("normal", "bye")
      local took = ws.now() - t0
      assert.are.same({ 1006, "abnormal", false, "local", "close_timeout" },
        { ev.code, ev.name, ev.clean, ev.initiator, ev.error })
      assert.are.same({ code = 1000, reason = "bye" }, ev.sent)
      assert.is_true(took >= 0.2 and took < 3, "took " .. took)
      peer:wait()
    end)

  it("fails with 1009 when a message grows past max_message_size in "
    .. "fragments", function()
      local peer = raw_peer.start(function(p)
        for i = 1, 5 do p:write(p.frame(i == 1 and 2 or 0, ("f"):rep(300), false)) end
        p:read_for(0.3)
      end)
      local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
        { max_message_size = 1000 }))
      local _, err, ev = conn:receive(3)
      assert.are.equal("closed", err)
      assert.are.same({ 1009, "local", "protocol:message_too_big" },
        { ev.code, ev.initiator, ev.error })
      peer:wait()
    end)

  it("fails with 1009 past max_fragments", function()
    local peer = raw_peer.start(function(p)
      for i = 1, 10 do p:write(p.frame(i == 1 and 2 or 0, "", false)) end
      p:read_for(0.3)
    end)
    local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
      { max_fragments = 4 }))
    local _, _, ev = conn:receive(3)
    assert.are.same({ 1009, "protocol:too_many_fragments" },
      { ev.code, ev.error })
    peer:wait()
  end)

  it("stops reading while inbox_max messages wait, and resumes", function()
    local peer = raw_peer.start(function(p)
      -- five writes of ten messages, 50 ms apart
      for b = 0, 4 do
        local batch = {}
        for i = 1, 10 do batch[i] = p.frame(1, "m" .. (b * 10 + i)) end
        p:write(table.concat(batch))
        ws.sleep(0.05)
      end
      p:read_for(0.5)
    end)
    local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
      { inbox_max = 5 }))
    run(function() ws.sleep(0.4) end)
    -- the reader paused once the inbox held inbox_max: at most one more
    -- read's worth (one batch) got in, not all 50
    local waiting = conn._it - conn._ih + 1
    assert.is_true(waiting >= 5 and waiting <= 10, waiting .. " waiting")
    local got = {}
    for i = 1, 50 do got[i] = conn:receive(2) end
    assert.are.equal("m1", got[1])
    assert.are.equal("m50", got[50])
    conn:abort()
    peer:wait()
  end)
end)
