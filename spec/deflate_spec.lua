-- permessage-deflate in the engine (RFC 7692 sections 6 and 7.2), through
-- ws.protocol with `deflate` (what a handshake agreed): the wire bytes of
-- the RFC's examples, round trips in both roles, the RSV1 rules, and what
-- a bad or hostile compressed message does to the connection.
local protocol = require "ws.protocol"
local wire = require "support.wire"

local frame, feed, KEY = wire.frame, wire.feed, wire.KEY
local fails_with, assert_failed = wire.fails_with, wire.assert_failed

local function pair(agreed, copts, sopts)
  local c = protocol.new{ role = "client", deflate = agreed or {},
    max_message_size = copts and copts.max_message_size }
  local s = protocol.new{ role = "server", deflate = agreed or {},
    max_message_size = sopts and sopts.max_message_size }
  return c, s
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x "):format(c:byte()) end))
end

-- JSON-like text that compresses well.
local function json(n)
  local t, i = {}, 0
  local len = 0
  while len < n do
    i = i + 1
    local rec = ('{"id":%d,"name":"user%d","active":true,"score":%d},')
      :format(i, i % 97, (i * 7919) % 1000)
    t[#t + 1] = rec
    len = len + #rec
  end
  return table.concat(t):sub(1, n)
end

-- Binary bytes from a fixed linear congruential stream (plain arithmetic,
-- so it runs on Lua 5.1 and LuaJIT too), made once.
local NOISE
local function noise(n)
  if not NOISE then
    local t, x = {}, 12345
    for i = 1, 4096 do
      x = (x * 1103515245 + 12345) % 2147483648
      t[i] = string.char(math.floor(x / 65536) % 256)
    end
    -- a pseudo-random 4 KiB block repeated with shifts: random within a
    -- block, cheap to make; it tests round trips, not compression ratios
    local block, parts = table.concat(t), {}
    for i = 1, 64 do parts[i] = block:sub(i * 61 % 4096 + 1) .. block end
    NOISE = table.concat(parts)
  end
  assert(n <= #NOISE)
  return NOISE:sub(1, n)
end

describe("permessage-deflate: RFC 7692 7.2.3 examples", function()
  it("sends \"Hello\" as c1 07 f2 48 cd c9 c9 07 00 (7.2.3.1)", function()
    local _, s = pair()
    assert.are.equal("c1 07 f2 48 cd c9 c9 07 00 ",
      hex(s:send("Hello", "text", { compress = true })))
  end)

  it("reads 7.2.3.1's frame, and 7.2.3.2's second one over the shared window", function()
    local c = pair()
    assert.are.same({ { type = "message", kind = "text", data = "Hello" } },
      feed(c, "\193\7\242\72\205\201\201\7\0"))
    assert.are.same({ { type = "message", kind = "text", data = "Hello" } },
      feed(c, "\193\5\242\0\17\0\0"))
  end)

  it("reads 7.2.3.1's message fragmented (RSV1 on the first frame only)", function()
    local c = pair()
    assert.are.same({ { type = "message", kind = "text", data = "Hello" } },
      feed(c, "\65\3\242\72\205" .. "\128\4\201\201\7\0"))
  end)

  it("reads 7.2.3.4's uncompressed DEFLATE block", function()
    local c = pair()
    assert.are.same({ { type = "message", kind = "text", data = "Hello" } },
      feed(c, "\193\11\0\5\0\250\255\72\101\108\108\111\0"))
  end)

  it("sends the second \"Hello\" over the shared window as 7.2.3.2 does", function()
    local _, s = pair()
    s:send("Hello", "text", { compress = true })
    assert.are.equal("c1 05 f2 00 11 00 00 ",
      hex(s:send("Hello", "text", { compress = true })))
  end)

  it("without context takeover sends both the same, and reads them so", function()
    local agreed = { server_no_context_takeover = true }
    local c, s = pair(agreed)
    local a = s:send("Hello", "text", { compress = true })
    local b = s:send("Hello", "text", { compress = true })
    assert.are.equal("c1 07 f2 48 cd c9 c9 07 00 ", hex(a))
    assert.are.equal(a, b)
    assert.are.same({ { type = "message", kind = "text", data = "Hello" },
      { type = "message", kind = "text", data = "Hello" } }, feed(c, a .. b))
  end)
end)

describe("permessage-deflate round trips", function()
  local SIZES = { 0, 1, 125, 126, 65535, 65536, 256 * 1024 }

  for _, takeover in ipairs({ true, false }) do
    local agreed = { server_no_context_takeover = not takeover,
      client_no_context_takeover = not takeover }
    local label = takeover and "with" or "without"
    it("client to server and back, text and binary, " .. label
        .. " context takeover", function()
      local c, s = pair(agreed)
      for _, n in ipairs(SIZES) do
        for _, kind in ipairs({ "text", "binary" }) do
          local data = kind == "text" and json(n) or noise(n)
          local evs = feed(s, c:send(data, kind, { compress = true }))
          assert.are.equal(1, #evs)
          assert.are.equal(kind, evs[1].kind)
          assert.is_true(evs[1].data == data, kind .. " " .. n)
          evs = feed(c, s:send(data, kind, { compress = true }))
          assert.is_true(evs[1].data == data, kind .. " " .. n .. " back")
        end
      end
    end)
  end

  it("fragmented by the sender and fed a byte at a time", function()
    local c, s = pair()
    local data = json(5000)
    local bytes = c:send(data, "text", { fragment = 100, compress = true })
    local frames = wire.parse(bytes)
    assert.is_true(#frames > 1)
    assert.are.equal(4, frames[1].rsv)
    for i = 2, #frames do
      assert.are.equal(0, frames[i].rsv)
      assert.are.equal(0, frames[i].opcode)
    end
    local got = {}
    for i = 1, #bytes do
      for _, ev in ipairs(feed(s, bytes:sub(i, i))) do got[#got + 1] = ev end
    end
    assert.are.equal(1, #got)
    assert.is_true(got[1].data == data)
  end)

  it("streams a compressed message with send_part", function()
    local c, s = pair()
    local parts = { json(1000), json(3000), "" }
    local out = {}
    for i, p in ipairs(parts) do
      out[#out + 1] = c:send_part(p, "text", i == #parts)
    end
    local frames = wire.parse(table.concat(out))
    assert.are.equal(3, #frames)
    assert.are.same({ 4, 0, 0 }, { frames[1].rsv, frames[2].rsv,
      frames[3].rsv })
    local evs = feed(s, table.concat(out))
    assert.are.equal(1, #evs)
    assert.is_true(evs[1].data == table.concat(parts))
  end)

  it("windows 8 (compressed with 9) and 15 mixed, both ways", function()
    local agreed = { server_max_window_bits = 8, client_max_window_bits = 15 }
    local c, s = pair(agreed)
    for _, n in ipairs({ 10, 300, 5000, 100000 }) do
      local data = json(n)
      assert.is_true(feed(c, s:send(data, "text", { compress = true }))[1]
        .data == data)
      assert.is_true(feed(s, c:send(data, "text", { compress = true }))[1]
        .data == data)
    end
  end)

  it("compresses JSON-like text to well under half, and counts it", function()
    local c, s = pair()
    local data = json(64 * 1024)
    local bytes = s:send(data)
    assert.is_true(#bytes < #data / 4, "sent " .. #bytes)
    feed(c, bytes)
    local st = s:deflate_stats()
    assert.are.equal(#data, st.tx_raw)
    assert.are.equal(#bytes - 4, st.tx_wire) -- a 4-byte frame header
    local cst = c:deflate_stats()
    assert.are.equal(st.tx_wire, cst.rx_wire)
    assert.are.equal(#data, cst.rx_raw)
  end)
end)

describe("permessage-deflate: which messages are compressed", function()
  it("leaves messages under the threshold (128 by default) uncompressed", function()
    local _, s = pair()
    assert.are.equal(0, wire.parse(s:send(("x"):rep(127)))[1].rsv)
    assert.are.equal(4, wire.parse(s:send(("x"):rep(128)))[1].rsv)
  end)

  it("takes the threshold from the agreement's tuning", function()
    local _, s = pair({ threshold = 0 })
    assert.are.equal(4, wire.parse(s:send("a"))[1].rsv)
    assert.are.equal(4, wire.parse(s:send(""))[1].rsv)
  end)

  it("compress = false sends one message plain, compress = true forces it", function()
    local c, s = pair()
    local data = json(1000)
    local plain = s:send(data, "text", { compress = false })
    assert.are.equal(0, wire.parse(plain)[1].rsv)
    assert.are.equal(data, wire.parse(plain)[1].payload)
    local forced = s:send("hi", "text", { compress = true })
    assert.are.equal(4, wire.parse(forced)[1].rsv)
    -- both read back, in order, over the same window
    local evs = feed(c, plain .. forced .. s:send(data))
    assert.are.same({ data, "hi", data }, { evs[1].data, evs[2].data,
      evs[3].data })
  end)

  it("never compresses control frames", function()
    local _, s = pair({ threshold = 0 })
    assert.are.equal(0, wire.parse(s:ping(("p"):rep(100)))[1].rsv)
    assert.are.equal(0, wire.parse(s:close(1000, ("r"):rep(100)))[1].rsv)
  end)

  it("raises on a compress option that is not a boolean, naming it", function()
    local _, s = pair()
    assert.error_matches(function() s:send("x", "text", { compress = 1 }) end,
      "bad argument #3 to 'send' (option 'compress': boolean expected, got number)",
      nil, true)
  end)

  it("sends RSV1 never without an agreement, whatever compress says", function()
    local s = protocol.new{ role = "server" }
    assert.are.equal("\129\2hi", s:send("hi", "text", { compress = true }))
  end)
end)

describe("permessage-deflate failures", function()
  it("RSV1 on a control frame: 1002 protocol:compressed_control", function()
    local ev, replies = fails_with(pair(),
      frame{ opcode = 9, rsv = 4, payload = "" })
    assert_failed(ev, replies, 1002, "protocol:compressed_control")
  end)

  it("RSV1 on a continuation frame: 1002 protocol:compressed_continuation", function()
    local c = pair()
    local ev, replies = fails_with(c, "\65\3\242\72\205" .. "\192\4\201\201\7\0")
    assert_failed(ev, replies, 1002, "protocol:compressed_continuation")
  end)

  it("RSV1 when nothing was agreed: 1002 protocol:rsv_bits", function()
    local ev, replies = fails_with(protocol.new{ role = "client" },
      "\193\7\242\72\205\201\201\7\0")
    assert_failed(ev, replies, 1002, "protocol:rsv_bits")
  end)

  it("RSV2 and RSV3 stay unknown with deflate agreed: 1002", function()
    local ev, replies = fails_with(pair(), frame{ rsv = 2, payload = "x" })
    assert_failed(ev, replies, 1002, "protocol:rsv_bits")
  end)

  it("a corrupt deflate stream: 1007 protocol:bad_deflate", function()
    -- BTYPE 11 (reserved) in the first block header
    local ev, replies = fails_with(pair(), "\193\3\255\255\255")
    assert_failed(ev, replies, 1007, "protocol:bad_deflate")
  end)

  it("a corrupt stream in a later frame of a fragmented message: 1007", function()
    local ev, replies = fails_with(pair(),
      -- "Hello" and a sync flush, then a block of the reserved type 11
      "\66\11\242\72\205\201\201\7\0\0\0\255\255" .. "\128\3\255\255\255")
    assert_failed(ev, replies, 1007, "protocol:bad_deflate")
  end)

  it("text that is not UTF-8 once inflated: 1007 protocol:invalid_utf8", function()
    local c = pair()
    local _, s = pair()
    local bytes = s:send("ok \255 not utf-8", "binary", { compress = true })
    -- the same payload as a text message
    local ev, replies = fails_with(c, "\193" .. bytes:sub(2))
    assert_failed(ev, replies, 1007, "protocol:invalid_utf8")
  end)

  it("a message that inflates past max_message_size: 1009, at once", function()
    local _, s = pair()
    -- 16 MiB of zeros deflate to about 16 KiB
    local bomb = s:send(("\0"):rep(16 * 1024 * 1024), "binary")
    assert.is_true(#bomb < 32 * 1024, "bomb is " .. #bomb)
    local c = pair(nil, { max_message_size = 1024 * 1024 })
    local ev, replies = fails_with(c, bomb)
    assert_failed(ev, replies, 1009, "protocol:message_too_big")
  end)

  it("the limit holds for a message inflated from many frames", function()
    local _, s = pair()
    local bytes = s:send(("a"):rep(300000), "text", { fragment = 64 })
    local c = pair(nil, { max_message_size = 200000 })
    local ev, replies = fails_with(c, bytes)
    assert_failed(ev, replies, 1009, "protocol:message_too_big")
  end)

  it("a message inflating to exactly max_message_size is delivered", function()
    local _, s = pair()
    local data = ("z"):rep(100000)
    local c = pair(nil, { max_message_size = 100000 })
    local evs = feed(c, s:send(data, "text", { fragment = 50 }))
    assert.are.equal(1, #evs)
    assert.is_true(evs[1].data == data)
  end)

  it("a server failing a compressed client frame answers 1007 unmasked", function()
    local _, s = pair()
    local ev, replies = fails_with(s, frame{ rsv = 4, key = KEY,
      payload = "\255\255\255" })
    assert_failed(ev, replies, 1007, "protocol:bad_deflate")
    assert.is_false(replies[1].masked)
  end)
end)
