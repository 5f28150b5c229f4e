local ws = require "ws"
local codes = ws.codes

describe("ws.codes", function()
  local registry = {
    { 1000, "normal" }, { 1001, "going_away" }, { 1002, "protocol_error" },
    { 1003, "unsupported_data" }, { 1004, "reserved" }, { 1005, "no_status" },
    { 1006, "abnormal" }, { 1007, "invalid_payload" },
    { 1008, "policy_violation" }, { 1009, "message_too_big" },
    { 1010, "mandatory_extension" }, { 1011, "internal_error" },
    { 1012, "service_restart" }, { 1013, "try_again_later" },
    { 1014, "bad_gateway" }, { 1015, "tls_handshake" },
  }

  for _, row in ipairs(registry) do
    it("maps " .. row[1] .. " to '" .. row[2] .. "' and back", function()
      assert.are.equal(row[2], codes[row[1]])
      assert.are.equal(row[1], codes[row[2]])
      assert.are.equal(row[2], codes.name(row[1]))
    end)
  end

  it("has no name for unassigned codes", function()
    assert.is_nil(codes[1016])
    assert.is_nil(codes[999])
    assert.is_nil(codes.name(3001))
  end)

  it("knows which codes are valid on the wire", function()
    local valid = {}
    for c = 0, 5100 do
      if codes.valid(c) then valid[#valid + 1] = c end
    end
    local expect = {}
    for c = 1000, 1003 do expect[#expect + 1] = c end
    for c = 1007, 1014 do expect[#expect + 1] = c end
    for c = 3000, 4999 do expect[#expect + 1] = c end
    assert.are.same(expect, valid)
  end)

  it("treats non-integers as invalid codes", function()
    assert.is_false(codes.valid(1000.5))
    assert.is_false(codes.valid("1000"))
  end)

  it("names an application code with define", function()
    assert.are.equal(4000, codes.define(4000, "spec_kicked", "fatal"))
    assert.are.equal(4000, codes.spec_kicked)
    assert.are.equal("spec_kicked", codes[4000])
    assert.are.equal("fatal", codes.class(4000))
  end)

  it("lets the same definition be repeated", function()
    codes.define(4001, "spec_again")
    assert.are.equal(4001, codes.define(4001, "spec_again"))
  end)

  it("refuses to define a code outside 3000-4999", function()
    assert.has_error(function() codes.define(1000, "mine") end,
      "bad argument #1 to 'define' (application codes are 3000-4999, got 1000)")
  end)

  it("refuses a name already used by another code", function()
    assert.has_error(function() codes.define(4002, "normal") end,
      "bad argument #2 to 'define' ('normal' already names 1000)")
  end)

  it("refuses to rename a named code", function()
    codes.define(4003, "spec_first")
    assert.has_error(function() codes.define(4003, "spec_second") end,
      "bad argument #1 to 'define' (4003 is already named 'spec_first')")
  end)

  it("refuses a name that would shadow a function", function()
    assert.has_error(function() codes.define(4004, "define") end,
      "bad argument #2 to 'define' ('define' is reserved)")
  end)

  it("refuses a name that is not an identifier", function()
    assert.has_error(function() codes.define(4005, "Bad Name") end,
      "bad argument #2 to 'define' (a name of lowercase letters, digits and _ "
      .. "expected, got Bad Name)")
  end)

  it("refuses an unknown class", function()
    assert.has_error(function() codes.define(4006, "spec_c", "sometimes") end,
      "bad argument #3 to 'define' (unknown class sometimes)")
  end)

  it("classifies codes for reconnect policies", function()
    assert.are.same(
      { "normal", "retry", "fatal", "retry", "retry", "fatal", "restart",
        "overload", "retry", "fatal" },
      { codes.class(1000), codes.class(1001), codes.class(1002),
        codes.class(1005), codes.class(1006), codes.class(1008),
        codes.class(1012), codes.class(1013), codes.class(3999),
        codes.class(2000) })
  end)

  it("resolves codes given by name or number", function()
    assert.are.equal(1001, codes.lookup("going_away"))
    assert.are.equal(1001, codes.lookup(1001))
    assert.is_nil(codes.lookup("nope"))
    assert.is_nil(codes.lookup("define"))
  end)

  it("checks close arguments without raising, by close's rules", function()
    local cases = {
      { { 1000, "bye" }, { true } },
      { { "going_away" }, { true } },
      { { 4001, ("r"):rep(123) }, { true } },
      { {}, { true } },
      { { 1000, "ok\255\254" },
        { nil, "close reason is not valid UTF-8", "reason_utf8", 2 } },
      { { 1000, ("r"):rep(124) },
        { nil, "reason is 124 bytes, at most 123 allowed", "reason", 2 } },
      { { 1005 }, { nil, "close code 1005 (no_status) may not be sent",
        "code", 1 } },
      { { 2999 }, { nil, "close code 2999 may not be sent", "code", 1 } },
      { { nil, "why" },
        { nil, "a close reason needs a close code", "reason_nocode", 2 } },
      { { "nope" }, { nil, "unknown close code name 'nope'", "code", 1 } },
      { { true }, { nil, "number or name expected, got boolean", "code", 1 } },
      { { 1000, 5 }, { nil, "string expected, got number", "reason", 2 } },
    }
    for _, c in ipairs(cases) do
      assert.are.same(c[2], { codes.close_check(c[1][1], c[1][2]) })
    end
  end)

  it("keeps close_check from being defined as a code name", function()
    assert.has_error(function() codes.define(4100, "close_check") end,
      "bad argument #2 to 'define' ('close_check' is reserved)")
  end)
end)

describe("codes.explain", function()
  it("explains every registered code 1000-1015, by number and by name", function()
    for code = 1000, 1015 do
      local e = codes.explain(code)
      assert.are.equal(code, e.code)
      assert.are.equal(codes[code], e.name)
      for _, k in ipairs({ "meaning", "cause", "action" }) do
        assert.is_true(type(e[k]) == "string" and #e[k] > 20, code .. " " .. k)
      end
      assert.are.same(e, codes.explain(codes[code]))
    end
  end)

  it("says what 1006 is and what to do about it", function()
    local e = codes.explain("abnormal")
    assert.matches("without a close frame", e.meaning)
    assert.matches("load balancer", e.cause)
    assert.matches("exponential backoff", e.action)
    assert.matches("heartbeats", e.action)
  end)

  it("has a generic entry for 3000-3999 and 4000-4999", function()
    assert.matches("IANA", codes.explain(3000).meaning)
    assert.matches("IANA", codes.explain(3999).meaning)
    assert.matches("private", codes.explain(4000).meaning)
    assert.is_nil(codes.explain(4999).name)
    codes.define(4711, "explained_app_code")
    assert.are.equal("explained_app_code", codes.explain(4711).name)
    assert.are.same(codes.explain(4711), codes.explain("explained_app_code"))
  end)

  it("returns nil for codes with no entry and unknown names", function()
    for _, c in ipairs({ 0, 999, 1016, 2999, 5000, "no_such_code" }) do
      assert.is_nil(codes.explain(c), tostring(c))
    end
  end)

  it("raises on an argument that is neither a number nor a name", function()
    assert.error_matches(function() codes.explain({}) end,
      "bad argument #1 to 'explain' (number or name expected, got table)",
      nil, true)
  end)

  it("is what doc/close-codes.md shows (make codes-doc)", function()
    local f = assert(io.open("doc/close-codes.md", "rb"))
    local doc = f:read("*a")
    f:close()
    assert.are.equal(dofile(".ci/codes_doc.lua"), doc)
  end)
end)
