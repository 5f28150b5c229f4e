-- send's deadline (`timeout`, and the connection-wide `send_wait`) against
-- a peer on a real socket that stops reading: send gives up with
-- nil, "timeout" having queued nothing, the connection stays open, and once
-- the peer reads again it gets every accepted message whole and in order,
-- and never the one that timed out.
local ws = require "ws"
local wire = require "support.wire"
local raw_peer = require "support.raw_peer"

local MSG = 64 * 1024

local function payload(i)
  return ("%08d"):format(i):rep(MSG / 8)
end

-- Frames (client frames, unmasked by wire.parse) in the bytes the peer
-- read; the first `upto` frames must be whole.
local function frames_of(bytes)
  return wire.parse(bytes)
end

describe("send with a deadline, against a peer that stops reading", function()
  for _, how in ipairs({ "timeout option", "send_wait option" }) do
    it("gives up with nil, \"timeout\" and a sound stream (" .. how .. ")",
        function()
      local resume = false
      local peer = raw_peer.start(function(p)
        -- not a byte read until the client has timed out
        local deadline = ws.now() + 20
        while not resume and ws.now() < deadline do ws.sleep(0.02) end
        p:read_for(1.5)
      end)
      local opts = { max_buffered = MSG, deflate = false }
      if how == "send_wait option" then opts.send_wait = 0.2 end
      local conn = assert(ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
        opts))
      local send_opts = how == "timeout option" and { timeout = 0.2 } or nil
      local accepted, result = 0, nil
      for i = 1, 400 do -- loopback buffers take a few MiB at most
        local ok, err = conn:send(payload(i), "binary", send_opts)
        if not ok then
          result = err
          break
        end
        accepted = i
      end
      assert.are.equal("timeout", result)
      assert.is_true(accepted > 0)
      assert.are.equal("open", conn.state)
      assert.is_nil(conn.close_event)
      resume = true
      -- the peer reads again: a later send goes through
      assert.is_true(conn:send("after", "text", send_opts))
      peer:wait(10)
      local frames = frames_of(peer.received)
      assert.are.equal(accepted + 1, #frames)
      for i = 1, accepted do
        assert.are.equal(2, frames[i].opcode)
        assert.is_true(frames[i].payload == payload(i), "message " .. i)
      end
      assert.are.equal("after", frames[accepted + 1].payload)
      conn:abort()
    end)
  end

  it("waits without limit when no deadline is given", function()
    local opts = require("ws.options")
    assert.is_nil(opts.connection({}).send_wait)
  end)

  it("raises on a bad timeout, naming it", function()
    local p = ws.protocol.new()
    assert.error_matches(function() p:send("x", "text", { timeout = 0 }) end,
      "bad argument #3 to 'send' (option 'timeout': positive number expected, got 0)",
      nil, true)
  end)
end)
