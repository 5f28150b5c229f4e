local protocol = require "ws.protocol"
local wire = require "support.wire"

local frame, feed, KEY = wire.frame, wire.feed, wire.KEY
local fails_with, assert_failed = wire.fails_with, wire.assert_failed

local function server() return protocol.new{ role = "server" } end
local function client() return protocol.new{ role = "client" } end

-- A masked frame, as a client sends it.
local function cframe(opts)
  opts.key = opts.key or KEY
  return frame(opts)
end


describe("RFC 6455 section 5.7 examples", function()
  it("decodes a single-frame unmasked text message", function()
    local evs = feed(client(), "\129\5\72\101\108\108\111")
    assert.are.same({ { type = "message", kind = "text", data = "Hello" } },
      evs)
  end)

  it("decodes a single-frame masked text message", function()
    local evs = feed(server(),
      "\129\133\55\250\33\61\127\159\77\81\88")
    assert.are.same({ { type = "message", kind = "text", data = "Hello" } },
      evs)
  end)

  it("reassembles a fragmented unmasked text message", function()
    local evs = feed(client(), "\1\3\72\101\108" .. "\128\2\108\111")
    assert.are.same({ { type = "message", kind = "text", data = "Hello" } },
      evs)
  end)

  it("decodes an unmasked ping and answers it with a pong", function()
    local p = server()
    local evs = feed(p, "\137\133\55\250\33\61\127\159\77\81\88")
    assert.are.same({ { type = "ping", data = "Hello" } }, evs)
    assert.are.equal("\138\5Hello", p:take_output())
  end)

  it("decodes a masked pong", function()
    local evs = feed(server(), "\138\133\55\250\33\61\127\159\77\81\88")
    assert.are.same({ { type = "pong", data = "Hello" } }, evs)
  end)

  it("decodes 256 bytes of binary data in one frame (16-bit length)", function()
    local data = ("\0\1\2\3"):rep(64)
    local evs = feed(client(), "\130\126\1\0" .. data)
    assert.are.same({ { type = "message", kind = "binary", data = data } },
      evs)
  end)

  it("decodes 64 KiB of binary data in one frame (64-bit length)", function()
    local data = ("abcdefgh"):rep(8192)
    local evs = feed(client(), "\130\127\0\0\0\0\0\1\0\0" .. data)
    assert.are.equal(1, #evs)
    assert.are.equal(65536, #evs[1].data)
    assert.are.equal(data, evs[1].data)
  end)
end)

describe("sending", function()
  it("frames text from a server unmasked with a 7-bit length", function()
    assert.are.equal("\129\5Hello", server():send("Hello"))
  end)

  it("frames binary with 16- and 64-bit lengths at 126 and 65536 bytes",
    function()
      local p = server()
      assert.are.equal("\130\126\0\126" .. ("a"):rep(126),
        p:send(("a"):rep(126), "binary"))
      assert.are.equal("\130\126\255\255" .. ("b"):rep(65535),
        p:send(("b"):rep(65535), "binary"))
      assert.are.equal("\130\127\0\0\0\0\0\1\0\0" .. ("c"):rep(65536),
        p:send(("c"):rep(65536), "binary"))
    end)

  it("masks every client frame and the payload unmasks to the data", function()
    local frames = wire.parse(client():send("Hello"))
    assert.are.equal(1, #frames)
    assert.is_true(frames[1].masked)
    assert.are.equal("Hello", frames[1].payload)
  end)

  it("uses a fresh random mask key for each client frame", function()
    local p, keys, n = client(), {}, 0
    for _ = 1, 2000 do
      local f = wire.parse(p:send("x"))[1]
      if not keys[f.key] then n = n + 1 end
      keys[f.key] = true
    end
    -- 2000 draws from 2^32 keys: a repeat is possible but all-distinct is
    -- expected (collision odds ~ 5e-4); 1990 leaves room for chance.
    assert.is_true(n >= 1990)
  end)

  it("splits a message into fragments of the requested size", function()
    local frames = wire.parse(server():send("abcdefghij", "text",
      { fragment = 4 }))
    assert.are.same({ { 1, false, "abcd" }, { 0, false, "efgh" },
      { 0, true, "ij" } }, {
      { frames[1].opcode, frames[1].fin, frames[1].payload },
      { frames[2].opcode, frames[2].fin, frames[2].payload },
      { frames[3].opcode, frames[3].fin, frames[3].payload } })
  end)

  it("sends a message in parts with send_part", function()
    local p = server()
    local out = p:send_part("ab", "binary", false) .. p:ping("x")
      .. p:send_part("cd", "binary", true)
    local evs = feed(client(), out)
    assert.are.same({ { type = "ping", data = "x" },
      { type = "message", kind = "binary", data = "abcd" } }, evs)
  end)

  it("refuses a whole message while a send_part message is open", function()
    local p = server()
    p:send_part("ab", "text", false)
    assert.has_error(function() p:send("x") end,
      "send: a fragmented message is already being sent")
  end)

  it("refuses to send text that is not UTF-8", function()
    local out, err = server():send("\255abc")
    assert.is_nil(out)
    assert.are.equal("text is not valid UTF-8", err)
  end)

  it("refuses a send_part text message cut inside a character", function()
    local p = server()
    assert.are.equal("\1\3a\226\130", p:send_part("a\226\130", "text", false))
    local out, err = p:send_part("", "text", true)
    assert.is_nil(out)
    assert.are.equal("text is not valid UTF-8", err)
  end)

  it("accepts binary data that is not UTF-8", function()
    assert.are.equal("\130\1\255", server():send("\255", "binary"))
  end)

  it("raises for an unknown message kind, naming the argument", function()
    assert.has_error(function() server():send("x", "blob") end,
      "bad argument #2 to 'send' (\"text\" or \"binary\" expected, got \"blob\")")
  end)

  it("raises for a ping payload over 125 bytes", function()
    assert.has_error(function() server():ping(("x"):rep(126)) end,
      "bad argument #1 to 'ping' (control frame payload longer than 125 bytes)")
  end)

  it("raises for a non-string message", function()
    assert.has_error(function() server():send(42) end,
      "bad argument #1 to 'send' (string expected, got number)")
  end)
end)

describe("close codes on the wire", function()
  for _, code in ipairs({ 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
    1011, 1012, 1013, 1014, 3000, 4999 }) do
    it("accepts a received close with code " .. code, function()
      local p = server()
      local evs = feed(p, cframe{ opcode = 8,
        payload = wire.close_payload(code, "r") })
      assert.are.equal(code, evs[1].code)
      assert.are.equal("r", evs[1].reason)
      assert.is_true(evs[1].clean)
      assert.are.equal("remote", evs[1].initiator)
      assert.is_nil(evs[1].error)
    end)
  end

  for _, code in ipairs({ 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000,
    65535 }) do
    it("fails with 1002 on a received close with code " .. code, function()
      local ev, replies = fails_with(server(), cframe{ opcode = 8,
        payload = wire.close_payload(code) })
      assert_failed(ev, replies, 1002, "protocol:invalid_close_code")
    end)
  end

  for _, code in ipairs({ 1004, 1005, 1006, 1015, 999, 2000, 5000 }) do
    it("refuses to send close code " .. code .. ", naming it", function()
      local p = server()
      local ok, err = pcall(p.close, p, code)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'close' (close code " .. code,
        err, 1, true)
      assert.are.equal("open", p.state)
    end)
  end

  it("names the code in the refusal of 1006", function()
    assert.has_error(function() server():close(1006) end,
      "bad argument #1 to 'close' (close code 1006 (abnormal) may not be sent)")
  end)

  it("raises for an unknown close code name", function()
    assert.has_error(function() server():close("bogus") end,
      "bad argument #1 to 'close' (unknown close code name 'bogus')")
  end)

  it("closes with a code given by name", function()
    local f = wire.parse(server():close("going_away", "bye"))[1]
    assert.are.equal(wire.close_payload(1001, "bye"), f.payload)
  end)

  it("fails with 1002 on a 1-byte close payload", function()
    local ev, replies = fails_with(server(),
      cframe{ opcode = 8, payload = "\3" })
    assert_failed(ev, replies, 1002, "protocol:bad_close_payload")
  end)

  it("sends a 123-byte reason", function()
    local reason = ("r"):rep(123)
    local f = wire.parse(server():close(1000, reason))[1]
    assert.are.equal(125, #f.payload)
  end)

  it("raises for a 124-byte reason", function()
    assert.has_error(function() server():close(1000, ("r"):rep(124)) end,
      "bad argument #2 to 'close' (reason is 124 bytes, at most 123 allowed)")
  end)

  it("raises for a close reason that is not UTF-8, like the other bad"
    .. " arguments", function()
    local p = server()
    assert.has_error(function() p:close(1000, "\192\175") end,
      "bad argument #2 to 'close' (close reason is not valid UTF-8)")
    assert.are.equal("open", p.state)
    assert.are.equal("", p:take_output())
  end)

  it("fails with 1007 on a received close reason that is not UTF-8", function()
    local ev, replies = fails_with(server(), cframe{ opcode = 8,
      payload = wire.close_payload(1000, "ok\237\160\128") })
    assert_failed(ev, replies, 1007, "protocol:invalid_close_reason")
  end)

  it("fails with 1002 on a close payload of 126 bytes", function()
    local ev, replies = fails_with(server(), cframe{ opcode = 8,
      payload = wire.close_payload(1000, ("r"):rep(124)) })
    assert_failed(ev, replies, 1002, "protocol:control_too_long")
  end)
end)

describe("close events", function()
  it("reports 1005 no_status when the close frame had no code", function()
    local p = server()
    local ev = feed(p, cframe{ opcode = 8 })[1]
    assert.are.equal(1005, ev.code)
    assert.are.equal("no_status", ev.name)
    assert.is_true(ev.clean)
    assert.are.same({ code = 1005, reason = "" }, ev.received)
    -- the reply carries no code either
    assert.are.equal("", wire.parse(p:take_output())[1].payload)
  end)

  it("reports 1006 abnormal when the stream ends without a close frame",
    function()
      local p = client()
      feed(p, "\129\5hel")
      p:eof()
      local evs = wire.drain(p)
      assert.are.same({ { type = "close", code = 1006, name = "abnormal",
        reason = "", clean = false, initiator = "transport",
        error = "eof" } }, evs)
      assert.are.equal("closed", p.state)
    end)

  it("reports 1006 when the stream ends after our close but before the reply",
    function()
      local p = client()
      p:close("normal")
      p:eof()
      local ev = wire.drain(p)[1]
      assert.are.equal(1006, ev.code)
      assert.are.equal("transport", ev.initiator)
      assert.are.same({ code = 1000, reason = "" }, ev.sent)
      assert.is_nil(ev.received)
    end)

  it("echoes a remote close and reports it as remote and clean", function()
    local p = client()
    local ev = feed(p, frame{ opcode = 8,
      payload = wire.close_payload(1001, "restart") })[1]
    assert.are.same({ type = "close", code = 1001, name = "going_away",
      reason = "restart", clean = true, initiator = "remote",
      sent = { code = 1001, reason = "" },
      received = { code = 1001, reason = "restart" } }, ev)
    local reply = wire.parse(p:take_output())
    assert.are.equal(1, #reply)
    assert.is_true(reply[1].masked)
    assert.are.equal(wire.close_payload(1001), reply[1].payload)
    assert.are.equal("closed", p.state)
  end)

  it("completes a local closing handshake as normal, local and clean",
    function()
      local c, s = client(), server()
      local sev = feed(s, c:close("normal", "bye"))[1]
      assert.are.equal("closing", c.state)
      assert.are.equal("closed", s.state)
      assert.are.equal("remote", sev.initiator)
      local ev = feed(c, s:take_output())[1]
      assert.are.same({ type = "close", code = 1000, name = "normal",
        reason = "bye", clean = true, initiator = "local",
        sent = { code = 1000, reason = "bye" },
        received = { code = 1000, reason = "" } }, ev)
      assert.are.equal("closed", c.state)
    end)

  it("reports exactly one close event per connection", function()
    local p = server()
    local evs = feed(p, cframe{ opcode = 8, payload = wire.close_payload(1000) }
      .. cframe{ opcode = 8, payload = wire.close_payload(1000) }
      .. cframe{ payload = "late" })
    p:eof()
    assert.are.equal(1, #evs)
    assert.are.equal(0, #wire.drain(p))
  end)

  it("names application codes defined with ws.codes.define", function()
    require("ws.codes").define(4321, "spec_custom")
    local ev = feed(server(), cframe{ opcode = 8,
      payload = wire.close_payload(4321) })[1]
    assert.are.equal("spec_custom", ev.name)
  end)

  it("leaves the name nil for an application code with no name", function()
    local ev = feed(server(), cframe{ opcode = 8,
      payload = wire.close_payload(4999) })[1]
    assert.are.equal(4999, ev.code)
    assert.is_nil(ev.name)
  end)
end)

describe("the closing handshake", function()
  it("refuses to send data after our close frame", function()
    local p = server()
    p:close(1000)
    local out, err = p:send("x")
    assert.is_nil(out)
    assert.are.equal("connection is closing", err)
    out, err = p:ping()
    assert.is_nil(out)
    assert.are.equal("connection is closing", err)
  end)

  it("refuses a second close", function()
    local p = server()
    p:close(1000)
    local out, err = p:close(1000)
    assert.is_nil(out)
    assert.are.equal("connection is closing", err)
  end)

  it("discards data messages received after our close frame", function()
    local p = server()
    p:close(1000)
    local evs = feed(p, cframe{ payload = "late" }
      .. cframe{ opcode = 8, payload = wire.close_payload(1000) })
    assert.are.equal(1, #evs)
    assert.are.equal("close", evs[1].type)
    assert.is_true(evs[1].clean)
  end)

  it("does not answer pings after our close frame", function()
    local p = server()
    p:close(1000)
    p:take_output()
    local evs = feed(p, cframe{ opcode = 9, payload = "p" })
    assert.are.same({ { type = "ping", data = "p" } }, evs)
    assert.are.equal("", p:take_output())
  end)

  it("ignores every byte after the connection closed", function()
    local p = client()
    feed(p, frame{ opcode = 8, payload = wire.close_payload(1000) })
    assert.are.same({}, feed(p, frame{ payload = "more" }))
    assert.are.same({}, feed(p, "\255\255\255"))
  end)

  it("refuses to send after a remote close", function()
    local p = client()
    feed(p, frame{ opcode = 8, payload = wire.close_payload(1000) })
    local out, err = p:send("x")
    assert.is_nil(out)
    assert.are.equal("connection is closed", err)
  end)

  it("sends a close frame without a code when none is given", function()
    local c, s = client(), server()
    local ev = feed(s, c:close())[1]
    assert.are.equal(1005, ev.code)
  end)
end)

describe("failing the connection with 1002", function()
  for _, op in ipairs({ 3, 4, 5, 6, 7, 11, 12, 13, 14, 15 }) do
    it("on reserved opcode " .. op, function()
      local ev, replies = fails_with(server(), cframe{ opcode = op })
      assert_failed(ev, replies, 1002, "protocol:reserved_opcode")
    end)
  end

  for _, rsv in ipairs({ 1, 2, 4, 7 }) do
    it("on RSV bits " .. rsv .. " with no extension", function()
      local ev, replies = fails_with(server(),
        cframe{ rsv = rsv, payload = "x" })
      assert_failed(ev, replies, 1002, "protocol:rsv_bits")
    end)
  end

  it("on a fragmented ping", function()
    local ev, replies = fails_with(server(),
      cframe{ opcode = 9, fin = false, payload = "x" })
    assert_failed(ev, replies, 1002, "protocol:fragmented_control")
  end)

  it("on a ping longer than 125 bytes", function()
    local ev, replies = fails_with(server(),
      cframe{ opcode = 9, payload = ("x"):rep(126) })
    assert_failed(ev, replies, 1002, "protocol:control_too_long")
  end)

  it("on a control frame with a 16-bit length of 125", function()
    -- the length value is what counts, not its encoding
    local evs = feed(server(), cframe{ opcode = 9, payload = ("x"):rep(125),
      form = "16" })
    assert.are.equal("ping", evs[1].type)
  end)

  it("on a continuation frame with nothing to continue", function()
    local ev, replies = fails_with(server(), cframe{ opcode = 0,
      payload = "x" })
    assert_failed(ev, replies, 1002, "protocol:unexpected_continuation")
  end)

  it("on a new data frame inside a fragmented message", function()
    local p = server()
    assert.are.same({}, feed(p, cframe{ opcode = 1, fin = false,
      payload = "a" }))
    local ev, replies = fails_with(p, cframe{ opcode = 2, payload = "b" })
    assert_failed(ev, replies, 1002, "protocol:expected_continuation")
  end)

  it("on a masked frame sent to a client", function()
    local ev, replies = fails_with(client(), cframe{ payload = "x" })
    assert.are.equal("protocol:masked_frame", ev.error)
    assert.are.equal(1002, ev.code)
    assert.is_true(replies[1].masked)
  end)

  it("on an unmasked frame sent to a server", function()
    local ev, replies = fails_with(server(), frame{ payload = "x" })
    assert_failed(ev, replies, 1002, "protocol:unmasked_frame")
  end)

  it("on a 64-bit length with the top bit set", function()
    local ev, replies = fails_with(server(),
      "\130\255\128\0\0\0\0\0\0\1" .. KEY)
    assert_failed(ev, replies, 1002, "protocol:length_top_bit")
  end)

  it("ignores all input after failing", function()
    local p = server()
    fails_with(p, cframe{ opcode = 3 })
    assert.are.same({}, feed(p, cframe{ payload = "x" }))
    p:eof()
    assert.are.same({}, wire.drain(p))
    assert.are.equal("closed", p.state)
  end)

  it("still delivers the messages before the violation", function()
    local evs = feed(server(), cframe{ payload = "ok" } .. cframe{ opcode = 3 })
    assert.are.equal(2, #evs)
    assert.are.same({ type = "message", kind = "text", data = "ok" }, evs[1])
    assert.are.equal(1002, evs[2].code)
  end)

  it("accepts control frames between fragments", function()
    local evs = feed(server(), cframe{ opcode = 1, fin = false, payload = "He" }
      .. cframe{ opcode = 9, payload = "p" }
      .. cframe{ opcode = 0, payload = "llo" })
    assert.are.same({ { type = "ping", data = "p" },
      { type = "message", kind = "text", data = "Hello" } }, evs)
  end)
end)

describe("UTF-8 in text messages", function()
  local bad = {
    ["a lone continuation byte"] = "a\128b",
    ["the byte C0"] = "\192\128",
    ["the byte C1"] = "\193\191",
    ["an overlong 2-byte form of '/'"] = "\192\175",
    ["an overlong 3-byte form"] = "\224\128\175",
    ["an overlong 4-byte form"] = "\240\128\128\175",
    ["a UTF-16 surrogate (U+D800)"] = "\237\160\128",
    ["a low surrogate (U+DFFF)"] = "\237\191\191",
    ["a code point above U+10FFFF"] = "\244\144\128\128",
    ["the byte F5"] = "\245\128\128\128",
    ["the byte FF"] = "x\255",
    ["a sequence cut off at the end of the message"] = "ok\226\130",
    ["a 4-byte sequence cut off after 3 bytes"] = "\240\159\152",
  }
  for what, text in pairs(bad) do
    it("fails with 1007 on " .. what, function()
      local ev, replies = fails_with(server(), cframe{ payload = text })
      assert_failed(ev, replies, 1007, "protocol:invalid_utf8")
    end)
  end

  local good = {
    ["the largest code point U+10FFFF"] = "\244\143\191\191",
    ["U+D7FF and U+E000 around the surrogates"] = "\237\159\191\238\128\128",
    ["2-, 3- and 4-byte characters"] = "\195\169\226\130\172\240\159\152\128",
    ["an empty message"] = "",
  }
  for what, text in pairs(good) do
    it("accepts " .. what, function()
      local evs = feed(server(), cframe{ payload = text })
      assert.are.same({ { type = "message", kind = "text", data = text } },
        evs)
    end)
  end

  it("accepts a character split across two fragments", function()
    local evs = feed(server(), cframe{ fin = false, payload = "\226\130" }
      .. cframe{ opcode = 0, payload = "\172" })
    assert.are.same({ { type = "message", kind = "text", data = "\226\130\172" } },
      evs)
  end)

  it("fails on a character split across fragments that goes bad", function()
    local p = server()
    assert.are.same({}, feed(p, cframe{ fin = false, payload = "\226\130" }))
    local ev, replies = fails_with(p, cframe{ opcode = 0, payload = "A" })
    assert_failed(ev, replies, 1007, "protocol:invalid_utf8")
  end)

  it("fails on the first bad byte before the rest of the frame arrives",
    function()
      local p = server()
      local f = cframe{ payload = "hello\255" .. ("x"):rep(100) }
      -- header (2 + 4 bytes) and the first 6 payload bytes only
      local ev, replies = fails_with(p, f:sub(1, 12))
      assert_failed(ev, replies, 1007, "protocol:invalid_utf8")
    end)

  it("fails on a bad first fragment before the message ends", function()
    local ev = fails_with(server(), cframe{ fin = false, payload = "\255" })
    assert.are.equal(1007, ev.code)
  end)

  it("fails at FIN when the final fragment cuts a character", function()
    local p = server()
    feed(p, cframe{ fin = false, payload = "a" })
    local ev = fails_with(p, cframe{ opcode = 0, payload = "\226" })
    assert.are.equal(1007, ev.code)
  end)

  it("accepts any bytes in a binary message", function()
    local evs = feed(server(), cframe{ opcode = 2, payload = "\255\192" })
    assert.are.equal("\255\192", evs[1].data)
  end)
end)

describe("limits", function()
  it("fails with 1009 on a frame larger than max_message_size", function()
    local p = protocol.new{ role = "server", max_message_size = 10 }
    local ev, replies = fails_with(p, cframe{ payload = ("x"):rep(11) })
    assert_failed(ev, replies, 1009, "protocol:message_too_big")
  end)

  it("fails with 1009 as soon as the header announces too much", function()
    local p = protocol.new{ role = "server", max_message_size = 1000 }
    local ev = fails_with(p, ("\130\254\39\16" .. KEY)) -- length 10000
    assert.are.equal(1009, ev.code)
  end)

  it("delivers a message of exactly max_message_size", function()
    local p = protocol.new{ role = "server", max_message_size = 10 }
    local evs = feed(p, cframe{ payload = ("x"):rep(10) })
    assert.are.equal(("x"):rep(10), evs[1].data)
  end)

  it("fails with 1009 when fragments add up past max_message_size", function()
    local p = protocol.new{ role = "server", max_message_size = 10 }
    assert.are.same({}, feed(p, cframe{ fin = false, payload = ("x"):rep(6) }))
    local ev, replies = fails_with(p, cframe{ opcode = 0,
      payload = ("x"):rep(5) })
    assert_failed(ev, replies, 1009, "protocol:message_too_big")
  end)

  it("fails with 1009 on a frame larger than max_frame_size", function()
    local p = protocol.new{ role = "server", max_frame_size = 4 }
    local ev, replies = fails_with(p, cframe{ payload = "12345" })
    assert_failed(ev, replies, 1009, "protocol:frame_too_big")
  end)

  it("fails with 1009 on more fragments than max_fragments", function()
    local p = protocol.new{ role = "server", max_fragments = 3 }
    local bytes = cframe{ fin = false, payload = "a" }
      .. cframe{ opcode = 0, fin = false, payload = "b" }
      .. cframe{ opcode = 0, fin = false, payload = "c" }
    assert.are.same({}, feed(p, bytes))
    local ev, replies = fails_with(p, cframe{ opcode = 0, payload = "d" })
    assert_failed(ev, replies, 1009, "protocol:too_many_fragments")
  end)

  it("counts empty fragments against max_fragments", function()
    local p = protocol.new{ role = "server", max_fragments = 2 }
    local ev = fails_with(p, cframe{ fin = false }
      .. cframe{ opcode = 0, fin = false } .. cframe{ opcode = 0 })
    assert.are.equal("protocol:too_many_fragments", ev.error)
  end)

  it("raises for a limit that is not a positive integer", function()
    assert.has_error(function()
      protocol.new{ role = "server", max_message_size = -1 }
    end, "bad argument #1 to 'new' (option 'max_message_size': positive "
      .. "integer expected, got -1)")
  end)

  it("raises for an unknown option, naming it", function()
    assert.has_error(function() protocol.new{ rol = "server" } end,
      "bad argument #1 to 'new' (unknown option 'rol')")
  end)

  it("raises for an unknown role", function()
    assert.has_error(function() protocol.new{ role = "peer" } end,
      "bad argument #1 to 'new' (option 'role': \"client\" or \"server\" "
      .. "expected, got \"peer\")")
  end)
end)

describe("automatic pongs", function()
  it("answers each ping with a pong carrying the same payload", function()
    local p = client()
    feed(p, frame{ opcode = 9, payload = "a" } .. frame{ opcode = 9,
      payload = "bc" })
    local frames = wire.parse(p:take_output())
    assert.are.equal(2, #frames)
    assert.are.same({ 10, "a", true }, { frames[1].opcode, frames[1].payload,
      frames[1].masked })
    assert.are.same({ 10, "bc", true }, { frames[2].opcode,
      frames[2].payload, frames[2].masked })
  end)

  it("puts pending pongs ahead of the next message", function()
    local p = server()
    feed(p, cframe{ opcode = 9, payload = "a" })
    local frames = wire.parse(p:send("m"))
    assert.are.same({ 10, 1 }, { frames[1].opcode, frames[2].opcode })
    assert.are.equal("", p:take_output())
  end)

  it("can be turned off", function()
    local p = protocol.new{ role = "server", auto_pong = false }
    local evs = feed(p, cframe{ opcode = 9, payload = "a" })
    assert.are.equal("ping", evs[1].type)
    assert.are.equal("", p:take_output())
  end)
end)

describe("the protocol object", function()
  it("starts open", function()
    assert.are.equal("open", server().state)
  end)

  it("reports buffered output", function()
    local p = server()
    feed(p, cframe{ opcode = 9, payload = "abc" })
    assert.are.equal(5, p:buffered_amount())
  end)

  it("refuses use after free with a clear error", function()
    local p = server()
    p:free()
    assert.are.equal("closed", p.state)
    assert.has_error(function() p:send("x") end,
      "attempt to use a freed protocol engine")
  end)

  it("raises when feed gets a non-string", function()
    assert.has_error(function() server():feed(nil) end,
      "bad argument #1 to 'feed' (string expected, got nil)")
  end)
end)

describe("mask keys", function()
  -- Keys come from a CSPRNG per frame, so two connections share a key
  -- only by chance: 5000 keys each out of 2^32 give an expected 0.006
  -- shared keys; 3 or more would happen with odds around 1e-8.
  local function keys(n)
    local p = protocol.new{ role = "client" }
    local t, list = {}, {}
    for i = 1, n do
      local k = p:send("k"):sub(3, 6)
      list[i] = k
      t[k] = (t[k] or 0) + 1
    end
    return t, list
  end

  it("never repeats between two connections (statistically)", function()
    local a = keys(5000)
    local b = keys(5000)
    local shared = 0
    for k in pairs(a) do if b[k] then shared = shared + 1 end end
    assert.is_true(shared <= 2, shared .. " keys shared")
  end)

  it("does not repeat within a connection (statistically)", function()
    local t = keys(5000)
    local repeats = 0
    for _, n in pairs(t) do if n > 1 then repeats = repeats + n - 1 end end
    assert.is_true(repeats <= 2, repeats .. " repeated keys")
  end)

  it("uses every byte value about evenly", function()
    local _, list = keys(4000)
    local counts = {}
    for b = 0, 255 do counts[b] = 0 end
    for _, k in ipairs(list) do
      for i = 1, 4 do local v = k:byte(i) counts[v] = counts[v] + 1 end
    end
    -- 16000 bytes over 256 values: 62.5 expected each; a chi-square over
    -- 255 degrees of freedom stays below 400 with odds beyond 1e-8
    local chi = 0
    for b = 0, 255 do chi = chi + (counts[b] - 62.5) ^ 2 / 62.5 end
    assert.is_true(chi < 400, "chi-square " .. chi)
  end)
end)
