-- The engine's part mode through the binding (ws.core engine: stream,
-- part events, and the backlog that keeps a compressed read from landing
-- in the queue all at once). No sockets: runs under valgrind (make
-- valgrind, CORE_SPECS).
local core = require "ws.core"

local AGREED = { server_max_window_bits = 15, client_max_window_bits = 15 }

local function pair(deflate)
  local c, s = core.engine("client"), core.engine("server", 2 ^ 30)
  if deflate then
    c:deflate(AGREED, -1, 8, 0)
    s:deflate(AGREED, -1, 8, 0)
  end
  s:stream(true)
  return c, s
end

-- Every queued event.
local function events(e)
  local t = {}
  for _ = 1, 1e6 do
    local ev = e:event()
    if not ev then return t end
    t[#t + 1] = ev
  end
end

describe("engine part mode (core.engine)", function()
  it("gives part events with kind and fin as bytes arrive", function()
    local c, s = pair()
    local wire = c:send("hello world", "text")
    s:feed(wire:sub(1, 10)) -- the 6-byte header (masked) and 4 payload bytes
    assert.are.same({ { type = "part", data = "hell", kind = "text",
      fin = false } }, events(s))
    s:feed(wire:sub(11))
    assert.are.same({ { type = "part", data = "o world", kind = "text",
      fin = true } }, events(s))
    s:feed(c:send("", "binary"))
    assert.are.same({ { type = "part", data = "", kind = "binary",
      fin = true } }, events(s))
  end)

  it("refuses stream() once input was fed", function()
    local c, s = core.engine("client"), core.engine("server")
    s:feed(c:send("x"))
    assert.error_matches(function() s:stream(true) end,
      "stream: the engine has been fed already", nil, true)
  end)

  it("holds back input once a feed queued a read's worth of inflated parts", function()
    local c, s = pair(true)
    local msg = ("\0"):rep(4 * 2 ^ 20)
    local wire = c:send(msg, "binary")
    assert.is_true(#wire < 8192) -- zeros compress about 1000:1
    s:feed(wire)
    local total, rounds, fins = 0, 0, 0
    for _ = 1, 1000 do
      rounds = rounds + 1
      local queued = 0
      for _, ev in ipairs(events(s)) do
        assert.are.equal("part", ev.type)
        assert.is_true(ev.data == ("\0"):rep(#ev.data))
        queued = queued + #ev.data
        if ev.fin then fins = fins + 1 end
      end
      -- a read's worth (64 KiB), plus the part that passed it
      assert.is_true(queued <= 65536 + 16384 + 258, queued)
      total = total + queued
      if s:backlog() == 0 then break end
      s:drain()
    end
    assert.are.same({ #msg, 1, 0 }, { total, fins, s:backlog() })
    assert.is_true(rounds >= #msg / (65536 + 16384 + 258))
  end)

  it("keeps the order of input fed while some is held back", function()
    local c, s = pair(true)
    local wire = c:send(("\0"):rep(2 ^ 20), "binary") .. c:send("next", "text")
    s:feed(wire:sub(1, 100))
    s:feed(wire:sub(101))
    local data = {}
    for _ = 1, 1000 do
      for _, ev in ipairs(events(s)) do data[#data + 1] = ev end
      if s:backlog() == 0 then break end
      s:drain()
    end
    local last = data[#data]
    assert.are.same({ "next", "text", true }, { last.data, last.kind, last.fin })
    local bytes = 0
    for i = 1, #data - 1 do bytes = bytes + #data[i].data end
    assert.are.equal(2 ^ 20, bytes)
    assert.is_true(data[#data - 1].fin)
  end)
end)

describe("ws.protocol with stream", function()
  local protocol = require "ws.protocol"

  it("gives parts from events(), running held-back input as they are taken", function()
    local agreed = { server_max_window_bits = 15, client_max_window_bits = 15 }
    local c = protocol.new{ role = "client", deflate = agreed }
    local s = protocol.new{ role = "server", deflate = agreed, stream = true,
      max_message_size = 2 ^ 22 }
    local msg = ("\0"):rep(2 ^ 22)
    s:feed(c:send(msg, "binary") .. c:send("next", "text"))
    local bytes, fins, last = 0, 0, nil
    for ev in s:events() do
      assert.are.equal("part", ev.type)
      bytes = bytes + #ev.data
      if ev.fin then fins = fins + 1 end
      last = ev
    end
    assert.are.same({ 2 ^ 22 + 4, 2 }, { bytes, fins })
    assert.are.same({ "next", "text", true }, { last.data, last.kind, last.fin })
  end)
end)
