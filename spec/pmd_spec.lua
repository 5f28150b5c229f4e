-- permessage-deflate negotiation (RFC 7692 sections 5 and 7.1) in the C
-- core, through ws.core's test-facing functions. Not yet wired into
-- connect/listen.
local core = require "ws.core"

local function params(snct, cnct, smwb, cmwb)
  return {
    server_no_context_takeover = snct,
    client_no_context_takeover = cnct,
    server_max_window_bits = smwb,
    client_max_window_bits = cmwb,
  }
end

-- accept's results packed for one assertion.
local function accept(header, cfg)
  return { core.pmd_accept(header, cfg) }
end

local function response(header, cfg)
  return { core.pmd_response(header, cfg) }
end

local DEFAULT = params(false, false, 15, 15)

describe("permessage-deflate offer", function()
  it("offers client_max_window_bits without a value by default, as browsers do", function()
    assert.equal("permessage-deflate; client_max_window_bits", core.pmd_offer())
    assert.equal("permessage-deflate; client_max_window_bits", core.pmd_offer({}))
  end)

  it("writes every parameter of the config in the RFC's order", function()
    assert.equal("permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
      .. " server_max_window_bits=10; client_max_window_bits=9",
      core.pmd_offer{ server_no_context_takeover = true, client_no_context_takeover = true,
                      server_max_window_bits = 10, client_max_window_bits = 9 })
  end)

  it("leaves client_max_window_bits out when it is false", function()
    assert.equal("permessage-deflate", core.pmd_offer{ client_max_window_bits = false })
  end)

  it("raises on a bad config field, naming it", function()
    assert.error_matches(function() core.pmd_offer{ server_max_window_bits = 16 } end,
      "bad field 'server_max_window_bits' %(an integer from 8 to 15 expected%)")
    assert.error_matches(function() core.pmd_offer{ client_max_window_bits = 7 } end,
      "bad field 'client_max_window_bits' %(an integer from 8 to 15 expected, or false%)")
    assert.error_matches(function() core.pmd_offer{ client_max_window_bits = 9.5 } end,
      "bad field 'client_max_window_bits'")
    assert.error_matches(function() core.pmd_offer{ server_max_window_bits = 1e300 } end,
      "bad field 'server_max_window_bits'")
    assert.error_matches(function() core.pmd_offer{ server_max_window_bits = 0/0 } end,
      "bad field 'server_max_window_bits'")
    assert.error_matches(function() core.pmd_offer{ server_max_window_bits = "10" } end,
      "bad field 'server_max_window_bits'")
    assert.error_matches(function() core.pmd_offer{ server_no_context_takeover = 1 } end,
      "bad field 'server_no_context_takeover' %(boolean expected, got number%)")
    assert.error_matches(function() core.pmd_accept("permessage-deflate", { client_max_window_bits = false }) end,
      "bad field 'client_max_window_bits' %(an integer from 8 to 15 expected%)")
  end)
end)

describe("permessage-deflate accept (server)", function()
  it("accepts a bare offer with a bare response (RFC 7692 section 7)", function()
    assert.same({ DEFAULT, "permessage-deflate", 1 }, accept("permessage-deflate"))
  end)

  it("accepts our own default offer", function()
    assert.same({ DEFAULT, "permessage-deflate", 1 }, accept(core.pmd_offer()))
  end)

  it("takes the first of RFC 7692 section 5's two offers when it can meet server_max_window_bits=10", function()
    local h = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
      .. "permessage-deflate; client_max_window_bits"
    assert.same({ params(false, false, 10, 15), "permessage-deflate; server_max_window_bits=10", 1 },
      accept(h))
  end)

  it("answers client_max_window_bits with its limit when the client offered it without a value", function()
    assert.same({ params(false, false, 15, 10), "permessage-deflate; client_max_window_bits=10", 1 },
      accept("permessage-deflate; client_max_window_bits", { client_max_window_bits = 10 }))
  end)

  it("declines an offer without client_max_window_bits when it must limit the client's window, and takes the next", function()
    assert.same({ nil, "the server limits the client's window but the offer does not allow it",
                  "client_max_window_bits_required" },
      accept("permessage-deflate", { client_max_window_bits = 10 }))
    assert.same({ params(false, false, 15, 12), "permessage-deflate; client_max_window_bits=12", 2 },
      accept("permessage-deflate, permessage-deflate; client_max_window_bits",
        { client_max_window_bits = 12 }))
  end)

  it("keeps the client's own smaller client_max_window_bits and names it back", function()
    assert.same({ params(false, false, 15, 9), "permessage-deflate; client_max_window_bits=9", 1 },
      accept("permessage-deflate; client_max_window_bits=9", { client_max_window_bits = 12 }))
    assert.same({ params(false, false, 15, 10), "permessage-deflate; client_max_window_bits=10", 1 },
      accept("permessage-deflate; client_max_window_bits=12", { client_max_window_bits = 10 }))
  end)

  it("answers the smaller of the offered and configured server_max_window_bits", function()
    assert.same({ params(false, false, 9, 15), "permessage-deflate; server_max_window_bits=9", 1 },
      accept("permessage-deflate; server_max_window_bits=12", { server_max_window_bits = 9 }))
    assert.same({ params(false, false, 11, 15), "permessage-deflate; server_max_window_bits=11", 1 },
      accept("permessage-deflate; server_max_window_bits=11", { server_max_window_bits = 13 }))
    assert.same({ params(false, false, 12, 15), "permessage-deflate; server_max_window_bits=12", 1 },
      accept("permessage-deflate", { server_max_window_bits = 12 }))
  end)

  it("echoes the no-context-takeover flags and adds the ones it demands", function()
    assert.same({ params(true, true, 15, 15),
                  "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 1 },
      accept("permessage-deflate; server_no_context_takeover; client_no_context_takeover"))
    assert.same({ params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover", 1 },
      accept("permessage-deflate", { server_no_context_takeover = true }))
    assert.same({ params(false, true, 15, 15), "permessage-deflate; client_no_context_takeover", 1 },
      accept("permessage-deflate", { client_no_context_takeover = true }))
  end)

  it("agrees to server_max_window_bits=8 (the server then sends uncompressed: zlib cannot deflate with 8)", function()
    assert.same({ params(false, false, 8, 15), "permessage-deflate; server_max_window_bits=8", 1 },
      accept("permessage-deflate; server_max_window_bits=8"))
  end)

  it("skips other extensions and empty list elements", function()
    assert.same({ DEFAULT, "permessage-deflate", 3 },
      accept("x-webkit-deflate-frame, foo; bar=1, , permessage-deflate,"))
  end)

  it("declines an offer with an unknown parameter and takes the next", function()
    assert.same({ nil, "unknown permessage-deflate parameter", "unknown_parameter" },
      accept("permessage-deflate; foo"))
    assert.same({ params(true, false, 15, 15), "permessage-deflate; server_no_context_takeover", 2 },
      accept("permessage-deflate; foo=1, permessage-deflate; server_no_context_takeover"))
  end)

  it("declines an offer with a repeated parameter", function()
    assert.same({ nil, "a permessage-deflate parameter is repeated", "duplicate_parameter" },
      accept("permessage-deflate; client_no_context_takeover; client_no_context_takeover"))
    assert.same({ nil, "a permessage-deflate parameter is repeated", "duplicate_parameter" },
      accept("permessage-deflate; server_max_window_bits=10; SERVER_MAX_WINDOW_BITS=10"))
  end)

  it("declines invalid values", function()
    for _, h in ipairs{
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=010",
      "permessage-deflate; server_max_window_bits=+9",
      "permessage-deflate; server_max_window_bits",
      "permessage-deflate; client_max_window_bits=0",
      "permessage-deflate; client_max_window_bits=abc",
      "permessage-deflate; server_no_context_takeover=1",
      "permessage-deflate; client_no_context_takeover=\"x\"",
    } do
      assert.same({ nil, "invalid permessage-deflate parameter value", "invalid_parameter_value" },
        accept(h), h)
    end
  end)

  it("reports why the first permessage-deflate offer was declined, or none", function()
    assert.same({ nil, "unknown permessage-deflate parameter", "unknown_parameter" },
      accept("permessage-deflate; x, permessage-deflate; server_max_window_bits=99"))
    assert.same({ nil, "no permessage-deflate offer", "none" }, accept("x-webkit-deflate-frame"))
    assert.same({ nil, "no permessage-deflate offer", "none" }, accept(""))
  end)

  it("unquotes values (RFC 7692 7.1: the unquoted value must be a token)", function()
    assert.same({ params(false, false, 15, 10), "permessage-deflate; client_max_window_bits=10", 1 },
      accept('permessage-deflate; client_max_window_bits="10"'))
    assert.same({ params(false, false, 10, 15), "permessage-deflate; server_max_window_bits=10", 1 },
      accept('permessage-deflate; server_max_window_bits="1\\0"'))
  end)

  it("matches the extension and parameter names without regard to case", function()
    assert.same({ params(true, false, 10, 15),
                  "permessage-deflate; server_no_context_takeover; server_max_window_bits=10", 1 },
      accept("PerMessage-Deflate; Server_No_Context_Takeover; SERVER_MAX_WINDOW_BITS=10"))
  end)

  it("allows whitespace around every separator", function()
    assert.same({ params(true, false, 10, 15),
                  "permessage-deflate; server_no_context_takeover; server_max_window_bits=10", 2 },
      accept(" \tfoo ,permessage-deflate ;server_no_context_takeover\t;  server_max_window_bits = \"10\" \t, "))
  end)

  it("refuses a malformed header (RFC 6455 9.1: fail the handshake)", function()
    for _, h in ipairs{
      "permessage-deflate; ",
      "permessage-deflate;; server_no_context_takeover",
      "permessage-deflate server_no_context_takeover",
      "permessage-deflate; server_max_window_bits=",
      'permessage-deflate; server_max_window_bits="10',
      'permessage-deflate; server_max_window_bits=""',
      'permessage-deflate; x="a b"',
      "permessage-deflate, (x)",
      "permessage-deflate; a=b=c",
      "permessage-deflate\r\n",
    } do
      assert.same({ nil, "Sec-WebSocket-Extensions does not follow the RFC 6455 grammar", "extension_syntax" },
        accept(h), h)
    end
  end)

  it("refuses a malformed header even after an acceptable offer", function()
    assert.same({ nil, "Sec-WebSocket-Extensions does not follow the RFC 6455 grammar", "extension_syntax" },
      accept("permessage-deflate, @"))
  end)

  it("refuses headers over 4096 bytes, 32 elements or 16 parameters of one element", function()
    local too_long = { nil, "Sec-WebSocket-Extensions is too long or has too many elements", "extension_too_long" }
    assert.same(too_long, accept("permessage-deflate" .. (" "):rep(4096)))
    assert.same(too_long, accept(("x, "):rep(32) .. "permessage-deflate"))
    assert.same(too_long, accept("foo" .. ("; a"):rep(17) .. ", permessage-deflate"))
    assert.same({ DEFAULT, "permessage-deflate", 32 }, accept(("x, "):rep(31) .. "permessage-deflate"))
  end)
end)

describe("permessage-deflate response (client)", function()
  it("agrees on the defaults from a bare response to our default offer", function()
    assert.same({ DEFAULT }, response("permessage-deflate"))
  end)

  it("returns false when the response names no extension", function()
    assert.same({ false }, response(""))
    assert.same({ false }, response(" , "))
  end)

  it("takes the server's values", function()
    assert.same({ params(true, true, 10, 12) },
      response("permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        .. " server_max_window_bits=10; client_max_window_bits=12"))
  end)

  it("takes client_max_window_bits=8 (the client then sends uncompressed)", function()
    assert.same({ params(false, false, 15, 8) }, response("permessage-deflate; client_max_window_bits=8"))
  end)

  it("keeps its own offered client_max_window_bits and client_no_context_takeover", function()
    assert.same({ params(false, true, 15, 10) },
      response("permessage-deflate", { client_max_window_bits = 10, client_no_context_takeover = true }))
  end)

  local function fails(name, msg, header, cfg)
    it(("fails with %s: %s"):format(name, header), function()
      assert.same({ nil, msg, name }, response(header, cfg))
    end)
  end
  fails("unexpected_extension", "the server accepted an extension that was not offered",
    "x-webkit-deflate-frame")
  fails("unexpected_extension", "the server accepted an extension that was not offered",
    "permessage-deflate, foo")
  fails("duplicate_extension", "the server accepted permessage-deflate more than once",
    "permessage-deflate, permessage-deflate")
  fails("unknown_parameter", "unknown permessage-deflate parameter",
    "permessage-deflate; foo")
  fails("duplicate_parameter", "a permessage-deflate parameter is repeated",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover")
  fails("invalid_parameter_value", "invalid permessage-deflate parameter value",
    "permessage-deflate; server_max_window_bits=16")
  fails("invalid_parameter_value", "invalid permessage-deflate parameter value",
    "permessage-deflate; client_max_window_bits")
  fails("server_max_window_bits", "server_max_window_bits missing or larger than offered",
    "permessage-deflate; server_max_window_bits=11", { server_max_window_bits = 10 })
  fails("server_max_window_bits", "server_max_window_bits missing or larger than offered",
    "permessage-deflate", { server_max_window_bits = 10 })
  fails("unexpected_client_max_window_bits", "client_max_window_bits in the response but not in the offer",
    "permessage-deflate; client_max_window_bits=10", { client_max_window_bits = false })
  fails("client_max_window_bits", "client_max_window_bits larger than offered",
    "permessage-deflate; client_max_window_bits=12", { client_max_window_bits = 10 })
  fails("server_no_context_takeover", "server_no_context_takeover offered but not in the response",
    "permessage-deflate", { server_no_context_takeover = true })
  fails("extension_syntax", "Sec-WebSocket-Extensions does not follow the RFC 6455 grammar",
    "permessage-deflate;")

  it("accepts a smaller server_max_window_bits than offered", function()
    assert.same({ params(false, false, 9, 15) },
      response("permessage-deflate; server_max_window_bits=9", { server_max_window_bits = 10 }))
  end)
end)

describe("permessage-deflate, our client against our server", function()
  local configs = {
    {},
    { client_max_window_bits = false },
    { client_max_window_bits = 10 },
    { server_no_context_takeover = true, client_no_context_takeover = true },
    { server_max_window_bits = 9, client_max_window_bits = 11 },
  }
  local servers = {
    {},
    { server_no_context_takeover = true },
    { server_max_window_bits = 10, client_max_window_bits = 9 },
  }
  it("agrees on the same parameters at both ends whenever the server accepts", function()
    local accepted = 0
    for _, c in ipairs(configs) do
      for _, s in ipairs(servers) do
        local got, text = core.pmd_accept(core.pmd_offer(c), s)
        if got then
          accepted = accepted + 1
          assert.same(got, core.pmd_response(text, c))
        end
      end
    end
    -- Only {client_max_window_bits = false} against a server limiting the
    -- client's window is declined.
    assert.equal(#configs * #servers - 1, accepted)
  end)
end)
