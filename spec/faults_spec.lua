-- Close events from real faults: a TCP proxy that cuts, resets or
-- black-holes the connection, and servers that break the protocol.
local ws = require "ws"
local reconnect = require "ws.reconnect"
local fault_proxy = require "support.fault_proxy"
local raw_peer = require "support.raw_peer"

local until_true = require("support.drive").until_true

local function fields(ev)
  return { ev.code, ev.name, ev.clean, ev.initiator, ev.error }
end

describe("faults in the transport", function()
  local server, proxy
  before_each(function()
    server = assert(ws.listen{ port = 0, handler = function(conn)
      for d, k in conn:messages() do conn:send(d, k) end
    end })
    proxy = fault_proxy.start(server.port)
  end)
  after_each(function()
    proxy:close()
    server:close(1)
  end)

  local function client(opts)
    opts = opts or {}
    opts.reconnect = opts.reconnect or reconnect.fixed(0.02)
    local c = ws.client("ws://127.0.0.1:" .. proxy.port .. "/", opts)
    local closes = {}
    c:on("close", function(_, ev) closes[#closes + 1] = ev end)
    until_true(function() return c.state == "open" end)
    return c, closes
  end

  it("reports 1006 eof when the connection is cut, then reconnects", function()
    local c, closes = client()
    local named = 0
    c:on("close:abnormal", function() named = named + 1 end)
    proxy:cut()
    until_true(function() return #closes == 1 and c.state == "open" end)
    assert.are.same({ 1006, "abnormal", false, "transport", "eof" },
      fields(closes[1]))
    assert.are.equal(1, named)
    assert.are.equal(2, proxy.accepted)
    c:close()
  end)

  it("reports 1006 reset when the connection is reset", function()
    local c, closes = client()
    proxy:reset()
    until_true(function() return #closes == 1 end)
    assert.are.same({ 1006, "abnormal", false, "transport", "reset" },
      fields(closes[1]))
    c:close()
  end)

  it("reports 1006 heartbeat_timeout when the path black-holes", function()
    local c, closes = client({ heartbeat = { interval = 0.1, timeout = 0.1 } })
    proxy:set_blackhole(true)
    until_true(function() return #closes == 1 end)
    assert.are.same({ 1006, "abnormal", false, "transport",
      "heartbeat_timeout" }, fields(closes[1]))
    proxy:set_blackhole(false)
    c:close()
  end)

  it("lists what was sent but never written, and sends it after reconnecting",
    function()
      local got = {}
      local c = client({ queue = { max = 100 } })
      c:on("message", function(_, d) got[#got + 1] = d end)
      proxy:set_blackhole(true)
      -- fill the socket buffers, then cut: some messages never left
      local big = ("m"):rep(512 * 1024)
      for i = 1, 12 do assert(c:send(i .. big)) end
      local ev
      c:on("close", function(_, e) ev = ev or e end)
      proxy:set_blackhole(false)
      proxy:cut()
      until_true(function() return ev ~= nil end)
      assert.is_true(#ev.unsent >= 1)
      -- the unsent ones go out again, in order, after reconnecting
      local first = ev.unsent[1].data
      until_true(function()
        for _, d in ipairs(got) do if d == first then return true end end
      end, 20)
      c:close()
    end)
end)

describe("servers that break the protocol", function()
  local cases = {
    { "sends a masked frame", "\129\133\1\2\3\4" .. ("x"):rep(5), 1002,
      "protocol_error", "protocol:masked_frame" },
    { "sends a reserved opcode", "\131\0", 1002, "protocol_error",
      "protocol:reserved_opcode" },
    { "sends invalid UTF-8", "\129\2\192\175", 1007, "invalid_payload",
      "protocol:invalid_utf8" },
    { "sends a message over the limit", "\130\126\4\0" .. ("z"):rep(1024),
      1009, "message_too_big", "protocol:message_too_big" },
  }
  for _, case in ipairs(cases) do
    it("fails the connection when the server " .. case[1], function()
      local peer = raw_peer.start(function(p)
        p:write(case[2])
        p:read_for(0.3)
      end)
      local c = ws.client("ws://127.0.0.1:" .. peer.port .. "/", {
        max_message_size = 1000 })
      local ev, named, gave_up
      c:on("close", function(_, e) ev = e end)
      c:on("close:" .. case[4], function() named = true end)
      c:on("give_up", function() gave_up = true end)
      until_true(function() return c.state == "closed" end)
      peer:wait()
      assert.are.same({ case[3], case[4], false, "local", case[5] }, fields(ev))
      assert.are.same({ code = case[3], reason = case[5] }, ev.sent)
      assert.is_true(named)
      assert.is_true(gave_up) -- fatal: reconnecting would fail the same way
      -- the peer got our close frame with that code
      local wire = require "support.wire"
      local frames = wire.parse(peer.received)
      assert.are.equal(8, frames[#frames].opcode)
      assert.are.equal(case[3], frames[#frames].payload:byte(1) * 256
        + frames[#frames].payload:byte(2))
    end)
  end

  it("reports 1006 eof when the server drops TCP mid-message", function()
    local peer = raw_peer.start(function(p)
      p:write("\130\126\4\0" .. ("z"):rep(100)) -- 100 of 1024 bytes
    end)
    local c = ws.client("ws://127.0.0.1:" .. peer.port .. "/",
      { reconnect = reconnect.never() })
    local ev
    c:on("close", function(_, e) ev = e end)
    until_true(function() return c.state == "closed" end)
    peer:wait()
    assert.are.same({ 1006, "abnormal", false, "transport", "eof" }, fields(ev))
  end)
end)
