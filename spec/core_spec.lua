-- The C primitives under ws.protocol: UTF-8, masking, frame headers,
-- close payloads.
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
end)
