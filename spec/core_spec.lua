-- The C primitives under ws.protocol: UTF-8, masking, frame headers,
-- close payloads, and the engine userdata (its event queue, deferred
-- failure, the close events it makes, the names of failed calls).
local core = require "ws.core"
local wire = require "support.wire"

describe("UTF-8 validation", function()
  local cases = {
    { "", true },
    { "plain ASCII", true },
    { "\195\169t\195\169", true },                       -- été
    { "\226\130\172", true },                            -- €
    { "\240\159\152\128", true },                        -- U+1F600
    { "\244\143\191\191", true },                        -- U+10FFFF
    { "\237\159\191", true },                            -- U+D7FF
    { "\238\128\128", true },                            -- U+E000
    { "\128", false, 1 },
    { "ab\192\175", false, 3 },
    { "\193\129", false, 1 },
    { "\224\159\191", false, 2 },                        -- overlong 3-byte
    { "\240\143\191\191", false, 2 },                    -- overlong 4-byte
    { "\237\160\128", false, 2 },                        -- U+D800
    { "\244\144\128\128", false, 2 },                    -- U+110000
    { "\245\128\128\128", false, 1 },
    { "\248\136\128\128\128", false, 1 },
    { "\255", false, 1 },
    { "abc\226\130", false, 6 },                         -- truncated
    { "\226\40\161", false, 2 },
    { ("a"):rep(40) .. "\233" .. ("b"):rep(40), false, 42 },
  }
  for _, c in ipairs(cases) do
    local text, ok, at = c[1], c[2], c[3]
    local label = text:gsub("[^%w ]", function(ch)
      return ("\\x%02X"):format(ch:byte())
    end)
    if ok then
      it("accepts \"" .. label .. "\"", function()
        assert.are.same({ true }, { core.utf8_valid(text) })
      end)
    else
      it("rejects \"" .. label .. "\" at byte " .. at, function()
        assert.are.same({ false, at }, { core.utf8_valid(text) })
      end)
    end
  end

  it("finds a bad byte at every position of a long ASCII run", function()
    for i = 1, 70 do
      local s = ("x"):rep(i - 1) .. "\255" .. ("y"):rep(70 - i)
      assert.are.same({ false, i }, { core.utf8_valid(s) }, "position " .. i)
    end
  end)
end)

describe("UTF-8 validation on every implementation", function()
  -- Each case of the table above (text, valid, offset of the bad byte),
  -- behind 0 to 140 bytes of mixed text and followed by more, so that the
  -- bad byte falls at every place in the vector validators' blocks.
  local cases = {
    { "\195\169t\195\169\226\130\172\240\159\152\128", true },
    { "\128", false, 1 }, { "ab\192\175", false, 3 }, { "\193\129", false, 1 },
    { "\224\159\191", false, 2 }, { "\240\143\191\191", false, 2 },
    { "\237\160\128", false, 2 }, { "\244\144\128\128", false, 2 },
    { "\245\128\128\128", false, 1 }, { "\255", false, 1 },
    { "abc\226\130", false, 6 }, { "\226\40\161", false, 2 },
    { "\226\130\172\128", false, 4 }, { "\240\159\152", false, 4 },
    { "\244\143\191\191", true }, { "\237\159\191", true },
  }
  -- valid text of exactly n bytes mixing 1- to 4-byte characters
  local chars = { "a", "\195\169", "\226\130\172", "\240\159\152\128" }
  local function mixed(n, seed)
    local out, len, k = {}, 0, seed
    while len < n do
      k = (k * 7 + 3) % 11
      local c = chars[k % 4 + 1]
      if len + #c > n then c = "b" end
      out[#out + 1] = c
      len = len + #c
    end
    return table.concat(out)
  end
  local impls = {}
  for _, name in ipairs({ "scalar", "sse4.1", "avx2" }) do
    if core.utf8_impl(name) then impls[#impls + 1] = name end
  end
  core.utf8_impl(false)

  it("has the scalar one, and the vector ones on x86", function()
    assert.are.equal("scalar", impls[1])
    local arch = io.popen("env -u LD_PRELOAD uname -m"):read("*l")
    if arch == "x86_64" then assert.is_true(#impls >= 2) end
    assert.are.equal(impls[#impls], core.utf8_impl())
    assert.are.same({ nil, "no UTF-8 validator \"neon\" on this CPU" },
      { core.utf8_impl("neon") })
  end)

  for _, name in ipairs(impls) do
    it("agrees with the expected offsets (" .. name .. ")", function()
      assert.are.equal(name, core.utf8_impl(name))
      local tail = "x" .. mixed(150, 5)
      for o = 0, 140 do
        local head = mixed(o, o)
        for i, c in ipairs(cases) do
          local text = head .. c[1] .. tail
          local want = c[2] and { true } or { false, #head + c[3] }
          assert.are.same(want, { core.utf8_valid(text) },
            ("case %d behind %d bytes"):format(i, o))
        end
        -- cut inside a character at the very end: not complete
        assert.are.same({ false, #head + 4 },
          { core.utf8_valid(head .. "\240\159\152") })
      end
      core.utf8_impl(false)
    end)
  end
end)

describe("masking", function()
  it("matches the RFC 6455 5.7 masked 'Hello'", function()
    assert.are.equal("\127\159\77\81\88", core.mask("Hello", wire.KEY))
  end)

  it("matches a byte-at-a-time XOR for every length up to 300", function()
    local data = ("The quick brown fox jumps over the lazy dog. "):rep(7)
    for len = 0, 300 do
      local s = data:sub(1, len)
      assert.are.equal(wire.mask(s, "\1\2\3\4"), core.mask(s, "\1\2\3\4"),
        "length " .. len)
    end
  end)

  it("continues the key from a phase", function()
    local data = ("0123456789"):rep(10)
    for phase = 0, 3 do
      assert.are.equal(wire.mask(data, "\170\187\204\221", phase),
        core.mask(data, "\170\187\204\221", phase), "phase " .. phase)
    end
  end)

  it("undoes itself", function()
    local data = ("\0\255\128"):rep(100)
    assert.are.equal(data, core.mask(core.mask(data, "wxyz"), "wxyz"))
  end)

  it("raises for a key that is not 4 bytes", function()
    assert.has_error(function() core.mask("x", "abc") end)
  end)
end)

describe("frame headers", function()
  local vectors = {
    { { opcode = 1, length = 5 }, "\129\5" },
    { { opcode = 2, length = 125 }, "\130\125" },
    { { opcode = 2, length = 126 }, "\130\126\0\126" },
    { { opcode = 2, length = 65535 }, "\130\126\255\255" },
    { { opcode = 2, length = 65536 }, "\130\127\0\0\0\0\0\1\0\0" },
    { { opcode = 2, length = 2 ^ 53 }, "\130\127\0\32\0\0\0\0\0\0" },
    { { opcode = 1, fin = false, length = 0 }, "\1\0" },
    { { opcode = 9, rsv = 4, length = 0 }, "\201\0" },
    { { opcode = 1, length = 5, key = wire.KEY }, "\129\133" .. wire.KEY },
    { { opcode = 1, length = 300, key = "abcd" }, "\129\254\1\44abcd" },
  }
  for i, v in ipairs(vectors) do
    it("encodes and decodes vector " .. i, function()
      local bytes = core.frame_header(v[1])
      assert.are.equal(v[2], bytes)
      local h, size = core.frame_decode(bytes)
      assert.are.equal(#bytes, size)
      assert.are.equal(v[1].opcode, h.opcode)
      assert.are.equal(v[1].length, h.length)
      assert.are.equal(v[1].fin ~= false, h.fin)
      assert.are.equal(v[1].rsv or 0, h.rsv)
      assert.are.equal(v[1].key, h.key)
    end)
  end

  it("reports an incomplete header at every cut", function()
    local bytes = "\130\255\0\0\0\0\0\1\0\0abcd"
    for i = 0, #bytes - 1 do
      assert.are.same({ nil, "incomplete" },
        { core.frame_decode(bytes:sub(1, i)) }, "cut at " .. i)
    end
  end)

  it("rejects a 64-bit length with the top bit set", function()
    assert.are.same({ nil, "invalid" },
      { core.frame_decode("\130\127\128\0\0\0\0\0\0\0") })
  end)

  it("accepts a length written in a longer form than needed", function()
    local h = core.frame_decode("\130\126\0\5")
    assert.are.equal(5, h.length)
  end)
end)

describe("messages framed once (core.frame, engine:send_framed)", function()
  it("frames a whole message as one unmasked FIN frame", function()
    assert.are.equal("\129\2hi", core.frame("hi"))
    assert.are.equal("\130\0", core.frame("", "binary"))
    local big = ("x"):rep(70000)
    assert.are.equal("\129\127\0\0\0\0\0\1\17\112" .. big,
      core.frame(big))
    assert.are.equal("\129\126\0\200" .. ("y"):rep(200),
      core.frame(("y"):rep(200), "text"))
  end)

  it("refuses text that is not UTF-8 and raises on a bad kind", function()
    assert.are.same({ nil, "text is not valid UTF-8", "utf8" },
      { core.frame("\237\160\128") })
    assert.are.equal("\130\1\255", core.frame("\255", "binary"))
    assert.error_matches(function() core.frame("x", "ping") end,
      "bad argument #2 to 'frame' (\"text\" or \"binary\" expected, got \"ping\")",
      nil, true)
  end)

  it("queues the frame on a server engine as it is", function()
    local e = core.engine("server")
    local f = core.frame("hello")
    assert.are.equal(f, e:send_framed(f))
    e:hold_output(true)
    assert.are.equal(2 * #f, e:send_framed(f))
    assert.are.equal(3 * #f, e:send_framed(core.frame("hello")))
    assert.are.equal(f .. f, e:take_output())
  end)

  it("refuses what is not one whole unmasked data frame", function()
    local e = core.engine("server")
    local bad = {
      "",                                   -- nothing
      "\129",                               -- a cut header
      "\129\3hi",                           -- a cut payload
      "\129\2hix",                          -- bytes after the frame
      "\1\2hi",                             -- no FIN
      "\193\2hi",                           -- RSV1
      "\137\2hi",                           -- a ping
      "\0\2hi",                             -- a continuation
      "\129\130abcd\9\11",                  -- masked
      core.frame("a") .. core.frame("b"),   -- two frames
    }
    for i, f in ipairs(bad) do
      assert.are.same({ nil, "invalid argument", "invalid" },
        { e:send_framed(f) }, "case " .. i)
    end
    assert.are.same({ nil, "invalid argument", "invalid" },
      { core.engine("client"):send_framed(core.frame("x")) })
  end)

  it("refuses while a message sent in parts is open, and after close",
      function()
    local e = core.engine("server")
    assert.is_string(e:send_part("a", "text", false))
    assert.are.same({ nil,
      "a fragmented message is already being sent", "fragment" },
      { e:send_framed(core.frame("x")) })
    assert.is_string(e:send_part("b", "text", true))
    assert.is_string(e:send_framed(core.frame("x")))
    e:close(1000, "")
    assert.are.same({ nil, "connection is closing", "closing" },
      { e:send_framed(core.frame("x")) })
  end)
end)

describe("close payloads", function()
  it("parses a code and a reason", function()
    assert.are.same({ 1000, "bye" }, { core.close_parse("\3\232bye") })
  end)

  it("reports 1005 for an empty payload", function()
    assert.are.same({ 1005, "" }, { core.close_parse("") })
  end)

  it("rejects a 1-byte payload", function()
    assert.are.same({ nil, "1-byte close payload" }, { core.close_parse("\3") })
  end)

  it("rejects an invalid code", function()
    assert.are.same({ nil, "invalid close code" },
      { core.close_parse("\3\238") })                   -- 1006
  end)

  it("rejects a reason that is not UTF-8", function()
    assert.are.same({ nil, "close reason is not valid UTF-8" },
      { core.close_parse("\3\232\255") })
  end)

  it("rejects a payload over 125 bytes", function()
    assert.are.same({ nil, "close payload longer than 125 bytes" },
      { core.close_parse("\3\232" .. ("r"):rep(124)) })
  end)
end)

describe("engine output held for a transport", function()
  it("returns stream positions and keeps the bytes in order", function()
    local e = core.engine("server")
    e:hold_output(true)
    assert.are.equal(4, e:send("hi"))
    assert.are.equal(7, e:ping("x"))
    assert.are.equal(7, e:buffered_amount())
    assert.are.equal(0, e:written())
    assert.are.same({ "\129\2hi\137\1x", 7 }, { e:take_output() })
    assert.are.equal(0, e:buffered_amount())
    assert.are.equal(7, e:written())
    assert.are.equal(11, e:send("ab"))
    assert.are.same({ "\129\2ab", 11 }, { e:take_output() })
    assert.are.same({ "", 11 }, { e:take_output() })
  end)

  it("send also returns the bytes now waiting to be written", function()
    local e = core.engine("server")
    e:hold_output(true)
    assert.are.same({ 4, 4 }, { e:send("hi") })
    assert.are.same({ 8, 8 }, { e:send("ab", "binary") })
    e:take_output()
    assert.are.same({ 11, 3 }, { e:send("x") })
  end)
end)

-- The engine userdata keeps its own event queue and makes every close
-- event. A server engine is used where output bytes are compared: its
-- frames are not masked.
local function masked(opcode, payload)
  return wire.frame{ opcode = opcode, payload = payload, key = wire.KEY }
end
local HI = masked(1, "hi")
local UNMASKED = wire.frame{ opcode = 1, payload = "x" } -- a server's violation
local UNMASKED_CLOSE = "\136\25\3\234protocol:unmasked_frame"

describe("engine event queue", function()
  it("feed returns how many events are queued", function()
    local e = core.engine("server")
    assert.are.equal(2, e:feed(HI .. masked(9, "p")))
  end)

  it("counts events still queued from an earlier feed", function()
    local e = core.engine("server")
    e:feed(HI)
    assert.are.equal(2, e:feed(masked(10, "q")))
  end)

  it("event returns the queued events oldest first, then nil", function()
    local e = core.engine("server")
    e:feed(HI .. masked(9, "p") .. masked(10, "q") .. masked(2, "\0\1"))
    assert.are.same({ type = "message", kind = "text", data = "hi" },
      e:event())
    assert.are.same({ type = "ping", data = "p" }, e:event())
    assert.are.same({ type = "pong", data = "q" }, e:event())
    assert.are.same({ type = "message", kind = "binary", data = "\0\1" },
      e:event())
    assert.is_nil(e:event())
  end)

  it("next returns the same events as values, without a table", function()
    local e = core.engine("server")
    e:feed(HI .. masked(9, "p") .. masked(10, "q") .. masked(2, "\0\1")
      .. masked(8, "\3\232bye"))
    -- a message's fourth value: whether more waits (here, yes)
    assert.are.same({ "message", "hi", "text", true }, { e:next() })
    assert.are.same({ "ping", "p" }, { e:next() })
    assert.are.same({ "pong", "q" }, { e:next() })
    assert.are.same({ "message", "\0\1", "binary", true }, { e:next() })
    local typ, ev = e:next()
    assert.are.equal("close", typ)
    assert.are.same({ type = "close", code = 1000, name = "normal",
      reason = "bye", clean = true, initiator = "remote",
      received = { code = 1000, reason = "bye" },
      sent = { code = 1000, reason = "" } }, ev)
    assert.are.same({ nil, false }, { e:next() })
  end)

  it("next returns parts with their kind and fin on a stream engine",
    function()
      local e = core.engine("server")
      e:stream(true)
      e:feed(wire.frame{ opcode = 2, payload = "ab", fin = false,
        key = wire.KEY } .. wire.frame{ opcode = 0, payload = "cd",
        key = wire.KEY } .. HI)
      assert.are.same({ "part", "ab", "binary", false }, { e:next() })
      assert.are.same({ "part", "cd", "binary", true }, { e:next() })
      assert.are.same({ "part", "hi", "text", true }, { e:next() })
      assert.are.same({ nil, false }, { e:next() })
    end)

  it("says with a message whether the next call would return nil, false",
    function()
      local e = core.engine("server")
      e:feed(HI .. masked(2, "b"))
      assert.are.same({ "message", "hi", "text", true }, { e:next() })
      assert.are.same({ "message", "b", "binary", false }, { e:next() })
      assert.are.same({ nil, false }, { e:next() })
      e:feed(HI)
      assert.are.same({ "message", "hi", "text", false }, { e:next(true) })
      assert.are.same({ nil, false }, { e:next(true) })
    end)

  it("event and next take from one queue, in order", function()
    local e = core.engine("server")
    e:feed(HI .. masked(2, "b") .. masked(9, "p"))
    assert.are.same({ "message", "hi", "text", true }, { e:next() })
    assert.are.same({ type = "message", kind = "binary", data = "b" },
      e:event())
    assert.are.same({ "ping", "p" }, { e:next() })
    assert.is_nil(e:event())
  end)

  it("feeds input larger than the shared read buffer", function()
    local e = core.engine("server")
    local big = ("0123456789abcdef"):rep(16384) -- 256 KiB
    assert.are.equal(2, e:feed(masked(2, big) .. HI))
    assert.is_true(e:event().data == big)
    assert.are.equal("hi", e:event().data)
    assert.is_nil(e:event())
  end)

  it("is not failing before a violation", function()
    assert.is_false(core.engine("server"):failing())
  end)
end)

describe("engine deferred failure", function()
  it("queues only the message that precedes a violation in the same bytes",
    function()
      local e = core.engine("server")
      assert.are.equal(1, e:feed(HI .. UNMASKED .. HI))
      assert.are.same({ type = "message", kind = "text", data = "hi" },
        e:event())
    end)

  it("is failing after that feed", function()
    local e = core.engine("server")
    e:feed(HI .. UNMASKED)
    assert.is_true(e:failing())
  end)

  it("stays open while the failure is pending", function()
    local e = core.engine("server")
    e:feed(HI .. UNMASKED)
    assert.are.equal("open", e:state())
  end)

  it("has nothing in the output while the failure is pending", function()
    local e = core.engine("server")
    e:feed(HI .. UNMASKED)
    assert.are.equal(0, e:buffered_amount())
  end)

  it("accepts a send while failing and puts it before the close frame",
    function()
      local e = core.engine("server")
      e:hold_output(true)
      e:feed(HI .. UNMASKED)
      e:event()
      assert.are.equal(4, e:send("re"))
      assert.are.same({ type = "close", code = 1002, name = "protocol_error",
        reason = "", clean = false, initiator = "local",
        error = "protocol:unmasked_frame",
        sent = { code = 1002, reason = "protocol:unmasked_frame" } },
        e:event())
      assert.are.equal("\129\2re" .. UNMASKED_CLOSE, (e:take_output()))
    end)

  it("event(true) returns nil while failing and leaves it pending",
    function()
      local e = core.engine("server")
      e:feed(HI .. UNMASKED)
      e:event()
      assert.is_nil(e:event(true))
      assert.is_true(e:failing())
      assert.are.equal(0, e:buffered_amount())
    end)

  it("next(true) returns nil and true while failing, next() the close",
    function()
      local e = core.engine("server")
      e:feed(HI .. UNMASKED)
      -- more: a violation waits behind the message
      assert.are.same({ "message", "hi", "text", true }, { e:next(true) })
      assert.are.same({ nil, true }, { e:next(true) })
      assert.are.equal(0, e:buffered_amount())
      local typ, ev = e:next()
      assert.are.same({ "close", 1002, "protocol:unmasked_frame" },
        { typ, ev.code, ev.error })
      assert.are.same({ nil, false }, { e:next() })
    end)

  it("event() acts on the failure once the queue is empty", function()
    local e = core.engine("server")
    e:feed(HI .. UNMASKED)
    e:event()
    assert.are.equal(1002, e:event().code)
    assert.is_false(e:failing())
    assert.are.equal("closed", e:state())
    assert.is_nil(e:event())
  end)

  it("acts at once when nothing precedes the violation", function()
    local e = core.engine("server")
    assert.are.equal(1, e:feed(UNMASKED))
    assert.is_false(e:failing())
    assert.are.equal("protocol:unmasked_frame", e:event().error)
    assert.are.equal(UNMASKED_CLOSE, (e:take_output()))
  end)

  it("ignores bytes fed while failing and keeps the failure pending",
    function()
      local e = core.engine("server")
      e:feed(HI .. UNMASKED)
      assert.are.equal(1, e:feed(masked(1, "later")))
      assert.is_true(e:failing())
    end)

  it("answers a close made while failing with no second close frame",
    function()
      local e = core.engine("server")
      e:hold_output(true)
      e:feed(HI .. UNMASKED)
      e:event()
      e:close(1000, "bye")
      local ev = e:event()
      assert.are.equal(1002, ev.code)
      assert.are.same({ code = 1000, reason = "bye" }, ev.sent)
      assert.are.equal("\136\5\3\232bye", (e:take_output()))
    end)

  it("fails text that is not UTF-8 with 1007", function()
    local e = core.engine("server")
    e:feed(masked(1, "\255"))
    local ev = e:event()
    assert.are.same({ 1007, "protocol:invalid_utf8" }, { ev.code, ev.error })
  end)
end)

describe("engine close events", function()
  it("lost('eof') queues a 1006 from the transport", function()
    local e = core.engine("server")
    assert.is_true(e:lost("eof"))
    assert.are.same({ type = "close", code = 1006, name = "abnormal",
      reason = "", clean = false, initiator = "transport", error = "eof" },
      e:event())
  end)

  it("lost('closed') is an eof", function()
    local e = core.engine("server")
    e:lost("closed")
    assert.are.equal("eof", e:event().error)
  end)

  it("lost(name, message) names the transport error and keeps the message",
    function()
      local e = core.engine("client")
      assert.is_true(e:lost("reset", "connection reset by peer"))
      assert.are.same({ type = "close", code = 1006, name = "abnormal",
        reason = "", clean = false, initiator = "transport", error = "reset",
        message = "connection reset by peer" }, e:event())
    end)

  it("reports the end only once", function()
    local e = core.engine("server")
    e:lost("eof")
    assert.is_false(e:lost("reset"))
    assert.is_false(e:expire("heartbeat"))
    assert.is_false(e:abort())
    e:event()
    assert.is_nil(e:event())
  end)

  it("reports nothing after a clean closing handshake", function()
    local e = core.engine("server")
    e:close(1000)
    e:feed(masked(8, "\3\232"))
    assert.are.equal(1000, e:event().code)
    assert.is_false(e:lost("eof"))
    assert.is_nil(e:event())
  end)

  it("closes the engine", function()
    local e = core.engine("server")
    e:lost("eof")
    assert.are.equal("closed", e:state())
  end)

  it("expire('heartbeat') queues a 1011 close frame and reports it as sent",
    function()
      local e = core.engine("server")
      assert.is_true(e:expire("heartbeat"))
      assert.are.same({ type = "close", code = 1006, name = "abnormal",
        reason = "", clean = false, initiator = "transport",
        error = "heartbeat_timeout",
        sent = { code = 1011, reason = "heartbeat timeout" } }, e:event())
      assert.are.equal("\136\19\3\243heartbeat timeout", (e:take_output()))
    end)

  it("expire('heartbeat') while closing sends no second close frame",
    function()
      local e = core.engine("server")
      e:close(1001)
      e:take_output()
      e:expire("heartbeat")
      assert.are.same({ code = 1001, reason = "" }, e:event().sent)
      assert.are.equal("", (e:take_output()))
    end)

  it("expire('close') is a local 1006 with our close frame as sent",
    function()
      local e = core.engine("server")
      e:close(1000, "bye")
      assert.is_true(e:expire("close"))
      assert.are.same({ type = "close", code = 1006, name = "abnormal",
        reason = "", clean = false, initiator = "local",
        error = "close_timeout", sent = { code = 1000, reason = "bye" } },
        e:event())
    end)

  it("abort() is a local 1006 with nothing sent", function()
    local e = core.engine("server")
    assert.is_true(e:abort())
    assert.are.same({ type = "close", code = 1006, name = "abnormal",
      reason = "", clean = false, initiator = "local", error = "aborted" },
      e:event())
    assert.are.equal("", (e:take_output()))
  end)

  it("reports a pending failure instead of the end", function()
    local e = core.engine("server")
    e:feed(HI .. UNMASKED)
    assert.is_true(e:lost("reset", "gone"))
    e:event()
    assert.are.same({ type = "close", code = 1002, name = "protocol_error",
      reason = "", clean = false, initiator = "local",
      error = "protocol:unmasked_frame",
      sent = { code = 1002, reason = "protocol:unmasked_frame" } },
      e:event())
  end)

  it("keeps the received close frame in a later event", function()
    local e = core.engine("server")
    e:close(1000)
    e:feed(masked(8, "\3\233going"))
    assert.are.same({ type = "close", code = 1000, name = "normal",
      reason = "", clean = true, initiator = "local",
      sent = { code = 1000, reason = "" },
      received = { code = 1001, reason = "going" } }, e:event())
  end)

  it("raises for an unknown expiry", function()
    assert.has_error(function() core.engine("server"):expire("soon") end)
  end)
end)

describe("core.handshake_failed", function()
  it("reports a TLS failure as 1015", function()
    assert.are.same({ type = "close", code = 1015, name = "tls_handshake",
      reason = "", clean = false, initiator = "transport", error = "tls",
      message = "certificate verify failed", unsent = {} },
      core.handshake_failed("tls", "certificate verify failed"))
  end)

  it("reports any other failure as 1006", function()
    assert.are.same({ type = "close", code = 1006, name = "abnormal",
      reason = "", clean = false, initiator = "transport",
      error = "refused", message = "connection refused", unsent = {} },
      core.handshake_failed("refused", "connection refused"))
  end)

  it("keeps the HTTP status of a refused upgrade", function()
    assert.are.equal(503,
      core.handshake_failed("unexpected_status", "HTTP 503", 503).http_status)
  end)
end)

describe("core.local_end", function()
  it("reports a client stopped between attempts with the code it was asked for", function()
    assert.are.same({ type = "close", code = 1001, name = "going_away",
      reason = "bye", clean = false, initiator = "local",
      error = "not_connected", unsent = {} },
      core.local_end("not_connected", 1001, "bye"))
  end)

  it("reports 1006 without a code, with the message", function()
    assert.are.same({ type = "close", code = 1006, name = "abnormal",
      reason = "", clean = false, initiator = "local", error = "internal",
      message = "boom", unsent = {} },
      core.local_end("internal", nil, nil, "boom"))
  end)

  it("refuses a reason without a code", function()
    assert.error_matches(function() core.local_end("x", nil, "why") end,
      "local_end: bad code or reason")
  end)
end)

describe("engine call failures", function()
  it("names a send after our close 'closing'", function()
    local e = core.engine("server")
    e:close(1000)
    assert.are.same({ nil, "connection is closing", "closing" },
      { e:send("x") })
  end)

  it("names a send after the end 'closed'", function()
    local e = core.engine("server")
    e:lost("eof")
    assert.are.same({ nil, "connection is closed", "closed" },
      { e:send("x") })
  end)

  it("names a ping after our close 'closing'", function()
    local e = core.engine("server")
    e:close(1000)
    assert.are.same({ nil, "connection is closing", "closing" },
      { e:ping("x") })
  end)

  it("names text that is not UTF-8 'utf8'", function()
    assert.are.same({ nil, "text is not valid UTF-8", "utf8" },
      { core.engine("server"):send("\255") })
  end)

  it("names a message part that is not UTF-8 'utf8'", function()
    assert.are.same({ nil, "text is not valid UTF-8", "utf8" },
      { core.engine("server"):send_part("\255", "text", true) })
  end)

  it("raises for a close reason that is not UTF-8, and the engine stays open",
    function()
      local e = core.engine("server")
      assert.has_error(function() e:close(1000, "\255") end,
        "bad argument #2 to 'close' (close reason is not valid UTF-8)")
      assert.are.equal("open", e:state())
      assert.are.equal("", (e:take_output()))
      assert.are.equal(6, #e:close(1000, "ok"))
      assert.are.equal("closing", e:state())
    end)

  it("raises for a close code that may not be sent", function()
    assert.has_error(function() core.engine("server"):close(1006) end,
      "bad argument #1 to 'close' (close code 1006 (abnormal) may not be sent)")
  end)

  it("checks bad close arguments before the state", function()
    local e = core.engine("server")
    assert.are.equal(4, #e:close(1000))
    assert.has_error(function() e:close(1000, ("r"):rep(124)) end,
      "bad argument #2 to 'close' (reason is 124 bytes, at most 123 allowed)")
    assert.are.same({ nil, "connection is closing", "closing" },
      { e:close(1000) })
  end)
end)

describe("core.close_check", function()
  local cases = {
    { { 1000, "bye" }, { true } },
    { { nil, nil }, { true } },
    { { 4999, ("r"):rep(123) }, { true } },
    { { 999 }, { nil, "close code 999 may not be sent", "code", 1 } },
    { { 1005 }, { nil, "close code 1005 (no_status) may not be sent", "code",
      1 } },
    { { 1015 }, { nil, "close code 1015 (tls_handshake) may not be sent",
      "code", 1 } },
    { { 2999 }, { nil, "close code 2999 may not be sent", "code", 1 } },
    { { 5000 }, { nil, "close code 5000 may not be sent", "code", 1 } },
    { { 70000 }, { nil, "close code 70000 may not be sent", "code", 1 } },
    { { nil, "why" }, { nil, "a close reason needs a close code",
      "reason_nocode", 2 } },
    { { 1000, ("r"):rep(124) }, { nil,
      "reason is 124 bytes, at most 123 allowed", "reason", 2 } },
    { { 1000, "ok\255\254" }, { nil, "close reason is not valid UTF-8",
      "reason_utf8", 2 } },
  }
  for _, c in ipairs(cases) do
    it(("answers %s, %q"):format(tostring(c[1][1]), tostring(c[1][2])),
      function()
        assert.are.same(c[2], { core.close_check(c[1][1], c[1][2]) })
      end)
  end
end)

describe("engine:close_end", function()
  it("is nil until a close frame is queued, then where it ends", function()
    local e = core.engine("server")
    e:hold_output(true)
    assert.is_nil(e:close_end())
    e:send("hello")              -- 7 bytes
    assert.is_nil(e:close_end())
    e:close(1000, "bye")         -- 7 more
    assert.are.equal(14, e:close_end())
    assert.are.equal(0, e:written())
    local out, pos = e:take_output()
    assert.are.equal(14, #out)
    assert.are.equal(14, pos)
  end)

  it("marks the reply to the peer's close", function()
    local e = core.engine("client")
    e:hold_output(true)
    e:feed("\136\2\3\232")      -- close 1000, unmasked to a client
    local ev = e:event()
    assert.are.equal("close", ev.type)
    assert.are.equal(1000, ev.sent.code)
    assert.are.equal(e:buffered_amount(), e:close_end())
  end)
end)

describe("engine call failures, more", function()

  it("raises for a ping payload over 125 bytes", function()
    assert.has_error(function()
      core.engine("server"):ping(("p"):rep(126))
    end)
  end)

  it("raises when a method is called on something else", function()
    local e = core.engine("server")
    assert.has_error(function() e.event({}) end)
    assert.has_error(function() e.feed(core.poller(), "") end)
  end)

  it("raises when a freed engine is used", function()
    local e = core.engine("server")
    e:free()
    assert.has_error(function() e:feed("") end)
  end)
end)

describe("large block cache (ws.core's allocator wrapper)", function()
  -- installed in front of the standard allocator: lauxlib's under PUC
  -- Lua 5.2-5.4 with glibc, LuaJIT's own; not under PUC Lua 5.1
  local stats = core.alloc_stats
  local wrapped = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

  it("is installed where the allocator is the standard one", function()
    assert.are.equal(wrapped, stats().installed)
  end)

  if not wrapped then return end

  it("hands a freed large string's block to the next one", function()
    collectgarbage()
    core.alloc_trim()
    local before = stats()
    assert.are.same({ 0, 0 }, { before.blocks, before.bytes })
    local s = ("a"):rep(100000)
    s = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    local mid = stats()
    assert.is_true(mid.kept > before.kept)
    local t = ("b"):rep(100000)
    local after = stats()
    assert.is_true(after.hits > mid.hits)
    assert.are.equal(100000, #t)
  end)

  it("holds at most 16 blocks and 16 MiB", function()
    local t = {}
    for i = 1, 64 do t[i] = ("c"):rep(300000 + i) end
    t = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    local st = stats()
    assert.is_true(st.blocks <= 16)
    assert.is_true(st.bytes <= 16 * 1024 * 1024)
    assert.is_true(st.blocks > 0)
  end)

  it("gives the oldest blocks back to make room for a new size", function()
    collectgarbage()
    core.alloc_trim()
    local t = {}
    -- distinct strings: LuaJIT interns even long ones
    for i = 1, 16 do t[i] = ("f"):rep(19990) .. ("%10d"):format(i) end
    t = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.are.equal(16, stats().blocks) -- full of 20 KB blocks
    local big = ("g"):rep(1000000)
    big = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    local hits = stats().hits
    local again = ("h"):rep(1000000)
    assert.is_true(stats().hits > hits)
    assert.are.equal(1000000, #again)
    assert.is_true(stats().blocks <= 16)
  end)

  it("serves a stream of large messages from its blocks", function()
    -- masked binary frames of 1 MiB, each message dropped once read: the
    -- strings come back to the cache as the collector frees them, and
    -- new ones reuse those blocks (under LuaJIT too, whose collector
    -- would fall behind such strings without the engine's help)
    local n = 1048576
    local function frame(i)
      return string.char(0x82, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0)
        .. ("%10d"):format(i) .. ("z"):rep(n - 10)
    end
    local frames = { frame(1), frame(2), frame(3), frame(4) }
    collectgarbage()
    core.alloc_trim()
    local e = core.engine("server")
    local before = stats()
    for i = 1, 60 do
      e:feed(frames[(i - 1) % 4 + 1])
      local typ, data = e:next()
      assert.are.equal("message", typ)
      assert.are.equal(n, #data)
    end
    local after = stats()
    -- (how many depends on when the collector frees them: 28 to 57 of
    -- the 60 under PUC Lua 5.3 and 5.4; 0 under LuaJIT when its collector
    -- was left behind, 58 since)
    assert.is_true(after.hits - before.hits >= 15,
      "hits: " .. (after.hits - before.hits))
    assert.is_true(after.blocks <= 16)
    e:free()
  end)

  it("gives the blocks back on alloc_trim", function()
    local s = ("e"):rep(100000)
    s = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    local held = stats().bytes
    assert.is_true(held >= 100000)
    assert.are.equal(held, core.alloc_trim())
    assert.are.same({ 0, 0 }, { stats().blocks, stats().bytes })
  end)

  it("leaves a table's large parts to the allocator", function()
    collectgarbage()
    core.alloc_trim()
    local before = stats().kept
    local t = {}
    for i = 1, 20000 do t[i] = i end -- an array part of 320 KB, grown
    t = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.are.equal(before, stats().kept)
  end)

  it("leaves small blocks to the allocator", function()
    collectgarbage()
    core.alloc_trim()
    local before = stats().kept
    local t = {}
    for i = 1, 500 do t[i] = ("d"):rep(1000 + i) end
    t = nil -- luacheck: ignore
    collectgarbage()
    assert.are.equal(before, stats().kept)
  end)
end)
