local ws = require "ws"
local raw_peer = require "support.raw_peer"

describe("heartbeat", function()
  it("reports 1006 heartbeat_timeout when the peer goes silent", function()
    local peer = raw_peer.start(function(p) p:read_for(1.5) end)
    local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
      { heartbeat = { interval = 0.1, timeout = 0.1 }, timeout = 5 }))
    local data, err, ev = conn:receive(3)
    assert.is_nil(data)
    assert.are.equal("closed", err)
    assert.are.same({ 1006, "abnormal", false, "transport",
      "heartbeat_timeout" },
      { ev.code, ev.name, ev.clean, ev.initiator, ev.error })
    peer:wait()
    -- the peer saw our ping, then a 1011 sent as a courtesy
    local wire = require "support.wire"
    local frames = wire.parse(peer.received)
    assert.are.same({ 9, 8 }, { frames[1].opcode, frames[#frames].opcode })
    assert.are.equal(wire.close_payload(1011, "heartbeat timeout"),
      frames[#frames].payload)
  end)

  it("counts any inbound frame as a sign of life", function()
    local peer = raw_peer.start(function(p)
      -- never answers pings, but sends a message every 50 ms for 0.6 s
      for i = 1, 12 do
        p:write(p.frame(1, "tick " .. i))
        ws.sleep(0.05)
      end
    end)
    local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
      { heartbeat = { interval = 0.1, timeout = 0.1 }, timeout = 5 }))
    local ticks = 0
    for _ = 1, 12 do
      if conn:receive(2) then ticks = ticks + 1 end
    end
    assert.are.equal(12, ticks)
    assert.is_nil(conn.close_event)
    conn:abort()
    peer:wait()
  end)

  it("keeps a quiet connection open when the peer answers pings", function()
    local s = assert(ws.listen{ port = 0, handler = function(c) c:receive(2) end })
    local conn = assert(ws.connect("ws://127.0.0.1:" .. s.port .. "/",
      { heartbeat = { interval = 0.05, timeout = 0.2 } }))
    assert.are.same({ nil, "timeout" }, { conn:receive(0.5) })
    assert.are.equal("open", conn.state)
    conn:close()
    s:close()
  end)

  it("lets a server drop a client that went silent", function()
    local core = require "ws.core"
    local loop = require "ws.loop"
    local got
    local s = assert(ws.listen{ port = 0,
      heartbeat = { interval = 0.1, timeout = 0.1 },
      handler = function(conn)
        local _, _, ev = conn:receive(5)
        got = ev
      end })
    -- a client that completes the handshake and then never reads
    local sock = assert(core.tcp_connect("127.0.0.1", s.port))
    local t = ws.spawn(function()
      loop.wait_fd(sock:fd(), "w", ws.now() + 2, sock)
      sock:write((ws.handshake.request{ host = "127.0.0.1", path = "/" }))
      while not got do ws.sleep(0.02) end
    end)
    local deadline = ws.now() + 5
    while not t.done and ws.now() < deadline do ws.step(0.02) end
    loop.forget_fd(sock:fd())
    sock:close()
    s:close()
    assert.are.same({ 1006, "transport", "heartbeat_timeout" },
      { got.code, got.initiator, got.error })
  end)

  it("raises for a heartbeat without a positive interval", function()
    assert.has_error(function()
      ws.connect("ws://127.0.0.1:1/", { heartbeat = { interval = 0, timeout = 1 } })
    end, "bad argument #2 to 'connect' (option 'heartbeat.interval': "
      .. "positive number expected, got 0)")
  end)
end)

describe("unsent messages", function()
  it("lists the messages the socket never took in the close event", function()
    local peer = raw_peer.start(function(p) ws.sleep(0.5) end) -- never reads
    local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
      { max_buffered = 64 * 1024 * 1024, timeout = 5 }))
    local sent = {}
    for i = 1, 40 do
      local msg = ("%04d"):format(i) .. ("x"):rep(256 * 1024)
      assert.is_true(conn:send(msg, "binary"))
      sent[i] = msg
    end
    local ev = conn:abort()
    -- a suffix of what was sent, in order, with kinds
    local n = #ev.unsent
    assert.is_true(n >= 1 and n < 40)
    for k = 1, n do
      local m = ev.unsent[k]
      assert.are.equal("binary", m.kind)
      assert.is_true(m.data == sent[40 - n + k], "unsent entry " .. k)
    end
    peer:wait()
  end)

  it("lists a message whose own write found the connection reset",
    function()
      local peer = raw_peer.start(function(p) ws.sleep(0.1) end)
      local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/"))
      local t = ws.spawn(function() ws.sleep(0.05) end)
      while not t.done do ws.step(0.01) end
      -- reset by the peer; the client has not read the RST yet
      local loop = require "ws.loop"
      loop.forget_fd(peer.sock:fd())
      peer.sock:reset()
      peer.sock = nil
      local msg = ("m"):rep(1000)
      local ok = conn:send(msg, "binary")
      local _, _, ev = conn:receive(2)
      peer:wait()
      assert.is_true(ok)
      assert.are.equal(1006, ev.code)
      assert.are.same({ { data = msg, kind = "binary" } }, ev.unsent)
    end)

  it("lists nothing when every message was written", function()
    local s = assert(ws.listen{ port = 0, handler = function(c)
      for d in c:messages() do c:send(d) end end })
    local conn = assert(ws.connect("ws://127.0.0.1:" .. s.port .. "/"))
    conn:send("a")
    conn:receive(2)
    local ev = conn:close()
    assert.are.same({}, ev.unsent)
    s:close()
  end)
end)
