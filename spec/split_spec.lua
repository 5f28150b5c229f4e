-- Streaming: however the bytes are cut, the events are the same.
local protocol = require "ws.protocol"
local wire = require "support.wire"

local frame, KEY = wire.frame, wire.KEY

local function cframe(opts)
  opts.key = opts.key or KEY
  return frame(opts)
end

-- Feed `chunks` (a list of strings) into a fresh engine; return events.
local function run(role, chunks)
  local p = protocol.new{ role = role }
  local evs = {}
  for _, c in ipairs(chunks) do
    p:feed(c)
    for ev in p:events() do evs[#evs + 1] = ev end
  end
  p:eof()
  for ev in p:events() do evs[#evs + 1] = ev end
  return evs, p:take_output()
end

local function split_at(s, i) return { s:sub(1, i), s:sub(i + 1) } end

local function bytes_of(s)
  local t = {}
  for i = 1, #s do t[i] = s:sub(i, i) end
  return t
end

-- A conversation with every kind of frame: 7-, 16- and 64-bit lengths,
-- fragments with control frames between them, multi-byte text cut across
-- fragments, ping, pong and a close.
local server_stream = table.concat{
  cframe{ payload = "Hello" },
  cframe{ opcode = 2, payload = ("\0\1\2\255"):rep(40) },         -- 160 B
  cframe{ opcode = 1, fin = false, payload = "caf\195" },
  cframe{ opcode = 9, payload = "ping!" },
  cframe{ opcode = 0, fin = false, payload = "\169 \226\130" },
  cframe{ opcode = 0, payload = "\172" },
  cframe{ opcode = 10, payload = "" },
  cframe{ opcode = 2, payload = ("z"):rep(70000), form = "64" },
  cframe{ payload = "" },
  cframe{ opcode = 8, payload = wire.close_payload(1000, "done") },
}

local client_stream = table.concat{
  frame{ payload = "Hello" },
  frame{ opcode = 1, fin = false, payload = "\240\159" },
  frame{ opcode = 9, payload = "x" },
  frame{ opcode = 0, payload = "\152\128" },
  frame{ opcode = 2, payload = ("q"):rep(300) },
  frame{ opcode = 8, payload = wire.close_payload(1001) },
}

describe("feeding split input", function()
  local whole_s, out_s = run("server", { server_stream })
  local whole_c, out_c = run("client", { client_stream })

  it("gives the expected events for the whole server-side stream", function()
    local types = {}
    for i, ev in ipairs(whole_s) do types[i] = ev.type end
    assert.are.same({ "message", "message", "ping", "message", "pong",
      "message", "message", "close" }, types)
    assert.are.equal("caf\195\169 \226\130\172", whole_s[4].data)
    assert.are.equal(70000, #whole_s[6].data)
    assert.are.same({ 1000, "done", true }, { whole_s[8].code,
      whole_s[8].reason, whole_s[8].clean })
  end)

  it("gives the same server events for every two-piece split", function()
    -- The 70000-byte frame makes every split point slow to try in full;
    -- all split points inside the frame headers and small frames are
    -- covered, and every 997th inside the large payload.
    local n = #server_stream
    for i = 0, n do
      if i < 400 or i > n - 100 or i % 997 == 0 then
        local evs, out = run("server", split_at(server_stream, i))
        assert.are.same(whole_s, evs, "split at " .. i)
        assert.are.equal(out_s, out, "output after split at " .. i)
      end
    end
  end)

  it("gives the same client events for every two-piece split", function()
    for i = 0, #client_stream do
      local evs = run("client", split_at(client_stream, i))
      assert.are.same(whole_c, evs, "split at " .. i)
    end
  end)

  it("gives the same client events fed one byte at a time", function()
    local evs = run("client", bytes_of(client_stream))
    assert.are.same(whole_c, evs)
  end)

  it("gives the same server events fed one byte at a time", function()
    local evs, out = run("server", bytes_of(server_stream))
    assert.are.same(whole_s, evs)
    assert.are.equal(out_s, out)
  end)

  it("gives the same server events in three-piece splits of the headers",
    function()
      local prefix = server_stream:sub(1, 60)
      local rest = server_stream:sub(61)
      for i = 0, #prefix do
        for j = i, #prefix do
          local evs = run("server", { prefix:sub(1, i), prefix:sub(i + 1, j),
            prefix:sub(j + 1) .. rest })
          assert.are.same(whole_s, evs, "split at " .. i .. "," .. j)
        end
      end
    end)

  it("fails on the same byte wherever an invalid stream is cut", function()
    local bad = cframe{ payload = "ok" } .. cframe{ fin = false,
      payload = "ab\237\160\128cd" } .. cframe{ opcode = 0, payload = "ef" }
    local whole = run("server", { bad })
    assert.are.equal(2, #whole)
    assert.are.equal(1007, whole[2].code)
    for i = 0, #bad do
      assert.are.same(whole, run("server", split_at(bad, i)), "split at " .. i)
    end
    assert.are.same(whole, run("server", bytes_of(bad)))
  end)
end)
