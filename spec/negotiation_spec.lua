-- permessage-deflate negotiation as ws.connect and ws.listen run it
-- (RFC 7692 sections 5 and 7.1): what our client offers and which answers
-- it refuses, against a scripted server on a real socket; and what our
-- server answers to each offer, through ws.opening.answer, the code both
-- ws.listen and ws.resty run.
local ws = require "ws"
local opening = require "ws.opening"
local options = require "ws.options"
local raw_peer = require "support.raw_peer"

-- A 101 answer carrying `ext` as Sec-WebSocket-Extensions (nil: none).
local function answering(ext)
  return function(req)
    local head = ws.handshake.response{ key = req.key }
    if not ext then return head end
    return head:gsub("\r\n\r\n$", "\r\nSec-WebSocket-Extensions: " .. ext
      .. "\r\n\r\n")
  end
end

-- Connect to a scripted server answering `ext`; returns what connect
-- returned and the request the server saw.
local function connect_to(ext, opts)
  local peer = raw_peer.start(function(p) p:read_for(0.2) end, answering(ext))
  local conn, err, ev = ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
    opts)
  if conn then conn:abort() end
  peer:wait()
  return conn, err, ev, peer.request
end

describe("our client's offer", function()
  it("is permessage-deflate with client_max_window_bits by default", function()
    local conn, _, _, req = connect_to(nil)
    assert.is_truthy(conn)
    assert.are.equal("permessage-deflate; client_max_window_bits",
      req.headers["sec-websocket-extensions"])
    assert.are.same({}, conn.extensions)
  end)

  it("carries every parameter of a deflate table", function()
    local _, _, _, req = connect_to(nil, { deflate = {
      server_no_context_takeover = true, client_no_context_takeover = true,
      server_max_window_bits = 10, client_max_window_bits = 9 } })
    assert.are.equal("permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover; server_max_window_bits=10; "
      .. "client_max_window_bits=9", req.headers["sec-websocket-extensions"])
  end)

  it("is left out with deflate = false", function()
    local conn, _, _, req = connect_to(nil, { deflate = false })
    assert.is_truthy(conn)
    assert.is_nil(req.headers["sec-websocket-extensions"])
  end)

  it("may not be replaced through headers", function()
    assert.error_matches(function()
      ws.connect("ws://127.0.0.1:1/", { headers = {
        ["Sec-WebSocket-Extensions"] = "x" } })
    end, "bad argument #2 to 'connect' %(.*Sec%-WebSocket%-Extensions")
  end)
end)

describe("our client reading the server's answer", function()
  it("takes the server's parameters into conn.extensions", function()
    local conn = connect_to("permessage-deflate; server_no_context_takeover; "
      .. "server_max_window_bits=10; client_max_window_bits=11")
    assert.is_truthy(conn)
    assert.are.same({ ["permessage-deflate"] = {
      server_no_context_takeover = true, client_no_context_takeover = false,
      server_max_window_bits = 10, client_max_window_bits = 11 } },
      conn.extensions)
  end)

  local refused = {
    { "permessage-deflate; foo", "unknown_parameter" },
    { "permessage-deflate; server_max_window_bits=16",
      "invalid_parameter_value" },
    { "permessage-deflate; server_max_window_bits", "invalid_parameter_value" },
    { "permessage-deflate; server_no_context_takeover=1",
      "invalid_parameter_value" },
    { "permessage-deflate; client_max_window_bits=7",
      "invalid_parameter_value" },
    { "permessage-deflate; server_no_context_takeover; "
      .. "server_no_context_takeover", "duplicate_parameter" },
    { "permessage-deflate, permessage-deflate", "duplicate_extension" },
    { "x-webkit-deflate-frame", "unexpected_extension" },
    { "permessage-deflate; x=\"a", "extension_syntax" },
  }
  for _, case in ipairs(refused) do
    it("fails the connection on \"" .. case[1] .. "\" (" .. case[2] .. ")",
        function()
      local conn, err, ev = connect_to(case[1])
      assert.is_nil(conn)
      assert.matches("Sec%-WebSocket%-Extensions is refused: .*%(" .. case[2]
        .. "%)$", err)
      assert.are.equal(1006, ev.code)
      assert.are.equal("extension", ev.error)
      assert.are.equal("fatal", ws.reconnect.classify(ev))
    end)
  end

  it("refuses client_max_window_bits when the offer left it out", function()
    local conn, err, ev = connect_to("permessage-deflate; "
      .. "client_max_window_bits=10", { deflate = {
        client_max_window_bits = false } })
    assert.is_nil(conn)
    assert.are.equal("extension", ev.error)
    assert.matches("%(unexpected_client_max_window_bits%)$", err)
  end)

  it("refuses an answer that drops server_no_context_takeover", function()
    local conn, err = connect_to("permessage-deflate",
      { deflate = { server_no_context_takeover = true } })
    assert.is_nil(conn)
    assert.matches("%(server_no_context_takeover%)$", err)
  end)

  it("refuses permessage-deflate when it offered nothing", function()
    local conn, err, ev = connect_to("permessage-deflate",
      { deflate = false })
    assert.is_nil(conn)
    assert.are.equal("extension", ev.error)
    assert.matches("%(unexpected_extension%)$", err)
  end)
end)

describe("our server answering offers", function()
  -- The answer ws.listen gives to a request offering `ext` with the
  -- server's `deflate` option.
  local function answer(ext, deflate)
    local head = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
      .. "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
      .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      .. (ext and ("Sec-WebSocket-Extensions: " .. ext .. "\r\n") or "")
      .. "\r\n"
    local req = assert(ws.handshake.parse_request(head))
    options.check(options.listen, { port = 0, handler = print,
      deflate = deflate }, 1)
    local bytes, z, status = opening.answer(req, { deflate = deflate },
      error)
    if not bytes then return nil, z, status end
    return bytes:match("\r\nSec%-WebSocket%-Extensions: ([^\r]*)"),
      z and z.params, z
  end

  it("declines every offer by default", function()
    assert.are.same({}, { answer("permessage-deflate") })
  end)

  it("limits both windows to 12 when the client allows it", function()
    local value, params, z = answer("permessage-deflate; client_max_window_bits",
      true)
    assert.are.equal("permessage-deflate; server_max_window_bits=12; "
      .. "client_max_window_bits=12", value)
    assert.are.same({ server_no_context_takeover = false,
      client_no_context_takeover = false, server_max_window_bits = 12,
      client_max_window_bits = 12 }, params)
    assert.are.same({ 6, 5, 128 }, { z.level, z.mem_level, z.threshold })
  end)

  it("accepts a client that cannot be limited with its 15-bit window", function()
    local value, params = answer("permessage-deflate", true)
    assert.are.equal("permessage-deflate; server_max_window_bits=12", value)
    assert.are.equal(15, params.client_max_window_bits)
  end)

  it("declines such a client when client_max_window_bits is set", function()
    assert.are.same({}, { answer("permessage-deflate",
      { client_max_window_bits = 12 }) })
  end)

  it("honours the client's smaller windows and its no_context_takeover", function()
    local value, params = answer("permessage-deflate; server_max_window_bits=9;"
      .. " client_max_window_bits=10; client_no_context_takeover", true)
    -- an offered value is named back, so both ends read it off the answer
    assert.are.equal("permessage-deflate; client_no_context_takeover; "
      .. "server_max_window_bits=9; client_max_window_bits=10", value)
    assert.are.equal(10, params.client_max_window_bits)
    assert.are.equal(9, params.server_max_window_bits)
    assert.is_true(params.client_no_context_takeover)
  end)

  it("takes the first offer it can accept", function()
    local value, params = answer("permessage-deflate; foo=1, "
      .. "permessage-deflate; server_max_window_bits=10, permessage-deflate",
      true)
    assert.are.equal("permessage-deflate; server_max_window_bits=10", value)
    assert.are.equal(10, params.server_max_window_bits)
  end)

  it("declines offers with a repeated or unknown parameter", function()
    assert.are.same({}, { answer("permessage-deflate; "
      .. "server_no_context_takeover; server_no_context_takeover", true) })
    assert.are.same({}, { answer("permessage-deflate; mystery", true) })
    assert.are.same({}, { answer("x-webkit-deflate-frame", true) })
  end)

  it("imposes its own no_context_takeover", function()
    local value, params = answer("permessage-deflate",
      { server_no_context_takeover = true })
    assert.are.equal("permessage-deflate; server_no_context_takeover; "
      .. "server_max_window_bits=12", value)
    assert.is_true(params.server_no_context_takeover)
  end)

  it("answers 400 to a header that breaks the grammar", function()
    assert.are.same({ nil, "extension_syntax", 400 },
      { answer("permessage-deflate; =", true) })
  end)
end)
