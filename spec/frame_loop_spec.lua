-- A game-style host: nothing but ws.step(0) once per frame at 60 Hz.
local ws = require "ws"

local FRAME = 1 / 60

-- Run `frames` frames; each calls ws.step(0) then idles to the next frame
-- boundary. Returns the frame at which done() first held (or nil) and
-- the longest ws.step(0) call.
local function frames(n, done)
  local longest = 0
  local next_frame = ws.now()
  for f = 1, n do
    local t0 = ws.now()
    ws.step(0)
    local took = ws.now() - t0
    if took > longest then longest = took end
    if done() then return f, longest end
    next_frame = next_frame + FRAME
    while ws.now() < next_frame do end -- the game would render here
  end
  return nil, longest
end

describe("a 60 Hz frame loop driving ws.step(0)", function()
  local server, client, drops
  before_each(function()
    drops = 0
    server = assert(ws.listen{ port = 0, handler = function(conn, req)
      if req.path == "/drop" and drops == 0 then
        drops = 1
        conn:abort()
        return
      end
      for d, k in conn:messages() do conn:send(d, k) end
    end })
  end)
  after_each(function()
    if client then client:close() end
    client = nil
    server:close(1)
  end)

  it("connects, echoes and pings within a few frames, never blocking",
    function()
      client = ws.client("ws://127.0.0.1:" .. server.port .. "/")
      local open_at, longest = frames(60, function() return client.state == "open" end)
      assert.is_number(open_at)
      assert.is_true(open_at <= 10, "open after " .. open_at .. " frames")
      local got
      client:on("message", function(_, d) got = d end)
      client:send("frame data")
      local echo_at, l2 = frames(60, function() return got == "frame data" end)
      assert.is_true(echo_at ~= nil and echo_at <= 5)
      local pong
      client:on("pong", function(_, d) pong = d end)
      client.conn._e:ping("p")
      client.conn._t:write(client.conn._e:take_output())
      local pong_at, l3 = frames(60, function() return pong == "p" end)
      assert.is_true(pong_at ~= nil and pong_at <= 5)
      -- ws.step(0) only polls: no call waited for the network (a blocking
      -- wait would last until the peer's next packet or a timeout); the
      -- bound is loose so a loaded machine cannot fail it
      assert.is_true(math.max(longest, l2, l3) < 0.25, "a step blocked")
    end)

  it("reconnects within a bounded number of frames", function()
    client = ws.client("ws://127.0.0.1:" .. server.port .. "/drop",
      { reconnect = ws.reconnect.fixed(0.1) })
    local opens = 0
    client:on("open", function() opens = opens + 1 end)
    local at = frames(120, function() return opens == 2 end)
    assert.is_true(at ~= nil and at <= 30, "reopened after " .. tostring(at)
      .. " frames")
  end)
end)
