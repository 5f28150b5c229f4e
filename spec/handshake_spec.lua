local hs = require "ws.handshake"

-- The sample key and accept value of RFC 6455 section 1.3.
local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
local ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

local function head(lines)
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local BASE_HEADERS = {
  { "Host", "server.example.com" },
  { "Upgrade", "websocket" },
  { "Connection", "Upgrade" },
  { "Sec-WebSocket-Key", KEY },
  { "Sec-WebSocket-Version", "13" },
}

-- A valid request with some base headers changed (a string) or removed
-- (false), more header lines appended, and the request line replaced.
local function request_with(changes, more, line)
  local lines = { line or "GET /chat HTTP/1.1" }
  for _, h in ipairs(BASE_HEADERS) do
    local v = changes and changes[h[1]]
    if v == nil then v = h[2] end
    if v then lines[#lines + 1] = h[1] .. ": " .. v end
  end
  for _, l in ipairs(more or {}) do lines[#lines + 1] = l end
  return head(lines)
end

local VALID_REQUEST = request_with(nil, {
  "Origin: http://example.com",
  "Sec-WebSocket-Protocol: chat, superchat",
})

local function response_with(changes, more, line)
  local base = {
    { "Upgrade", "websocket" },
    { "Connection", "Upgrade" },
    { "Sec-WebSocket-Accept", ACCEPT },
  }
  local lines = { line or "HTTP/1.1 101 Switching Protocols" }
  for _, h in ipairs(base) do
    local v = changes and changes[h[1]]
    if v == nil then v = h[2] end
    if v then lines[#lines + 1] = h[1] .. ": " .. v end
  end
  for _, l in ipairs(more or {}) do lines[#lines + 1] = l end
  return head(lines)
end

local VALID_RESPONSE = response_with(nil, { "Sec-WebSocket-Protocol: chat" })

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64decode(s)
  local bits, nbits, out = 0, 0, {}
  for c in s:gsub("=+$", ""):gmatch(".") do
    bits = bits * 64 + (B64:find(c, 1, true) - 1)
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local b = math.floor(bits / 2 ^ nbits)
      out[#out + 1] = string.char(b)
      bits = bits - b * 2 ^ nbits
    end
  end
  return table.concat(out)
end

-- Returns exactly what parse_request returned, as a list.
local function refuse(bytes, opts)
  return { hs.parse_request(bytes, opts) }
end

describe("ws.handshake", function()
  describe("accept", function()
    it("computes the RFC 6455 sample accept value", function()
      assert.equal(ACCEPT, hs.accept(KEY))
    end)

    it("raises when the key is not a string", function()
      assert.has_error(function() hs.accept(nil) end,
        "ws.handshake.accept: key must be a string (got nil)")
    end)
  end)

  describe("key", function()
    it("is 24 characters long", function()
      assert.equal(24, #hs.key())
    end)

    it("decodes to 16 bytes", function()
      assert.equal(16, #b64decode(hs.key()))
    end)

    it("differs between two calls", function()
      assert.not_equal(hs.key(), hs.key())
    end)
  end)

  describe("request", function()
    it("builds the exact request for a fixed key", function()
      local bytes, key = hs.request {
        host = "server.example.com", path = "/chat", key = KEY,
        protocols = { "chat", "superchat" }, origin = "http://example.com",
        headers = { ["X-Trace"] = "1" },
      }
      assert.equal("GET /chat HTTP/1.1\r\n"
        .. "Host: server.example.com\r\n"
        .. "Upgrade: websocket\r\n"
        .. "Connection: Upgrade\r\n"
        .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        .. "Sec-WebSocket-Version: 13\r\n"
        .. "Sec-WebSocket-Protocol: chat, superchat\r\n"
        .. "Origin: http://example.com\r\n"
        .. "X-Trace: 1\r\n"
        .. "\r\n", bytes)
      assert.equal(KEY, key)
    end)

    it("defaults the path to / and generates a key", function()
      local bytes, key = hs.request { host = "h" }
      assert.equal("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\nSec-WebSocket-Key: " .. key .. "\r\n"
        .. "Sec-WebSocket-Version: 13\r\n\r\n", bytes)
    end)

    it("writes extra headers sorted by name", function()
      local bytes = hs.request { host = "h", key = KEY,
        headers = { ["X-B"] = "2", ["X-A"] = "1" } }
      local tail = "X-A: 1\r\nX-B: 2\r\n\r\n"
      assert.equal(tail, bytes:sub(-#tail))
    end)

    it("round-trips through parse_request", function()
      local bytes, key = hs.request {
        host = "example.com:8080", path = "/feed?x=1",
        protocols = { "chat" }, origin = "https://example.com",
        headers = { Authorization = "Bearer t" },
      }
      local req, consumed = hs.parse_request(bytes, { protocols = { "chat" } })
      assert.same({
        method = "GET", path = "/feed?x=1", version = "1.1",
        host = "example.com:8080", key = key, origin = "https://example.com",
        protocols = { "chat" }, extensions = {}, protocol = "chat",
        accept = hs.accept(key),
        headers = {
          host = "example.com:8080", upgrade = "websocket",
          connection = "Upgrade", ["sec-websocket-key"] = key,
          ["sec-websocket-version"] = "13",
          ["sec-websocket-protocol"] = "chat",
          origin = "https://example.com", authorization = "Bearer t",
        },
      }, req)
      assert.equal(#bytes, consumed)
    end)

    it("raises when opts is not a table", function()
      assert.has_error(function() hs.request("h") end,
        "ws.handshake.request: opts must be a table (got string)")
    end)

    it("raises when host is not a string", function()
      assert.has_error(function() hs.request { host = 1 } end,
        "ws.handshake.request: host must be a string (got number)")
    end)

    it("raises when host is empty", function()
      assert.has_error(function() hs.request { host = "" } end,
        "ws.handshake.request: host must be a non-empty string")
    end)

    it("raises when the path contains a space", function()
      assert.has_error(function() hs.request { host = "h", path = "/a b" } end,
        'ws.handshake.request: path "/a b" is not a valid request target')
    end)

    it("raises when a protocol is not a token", function()
      assert.has_error(function()
        hs.request { host = "h", protocols = { "chat", "a,b" } }
      end, 'ws.handshake.request: protocols[2] is not a valid token: "a,b"')
    end)

    it("raises when protocols is not a table", function()
      assert.has_error(function()
        hs.request { host = "h", protocols = "chat" }
      end, "ws.handshake.request: protocols must be a table (got string)")
    end)

    it("raises naming a header whose name is not a token", function()
      assert.has_error(function()
        hs.request { host = "h", headers = { ["Bad Name"] = "x" } }
      end, 'ws.handshake.request: invalid header name "Bad Name"')
    end)

    it("raises naming a header whose value contains CR LF", function()
      assert.has_error(function()
        hs.request { host = "h", headers = { ["X-Evil"] = "a\r\nHost: b" } }
      end, 'ws.handshake.request: header "X-Evil" contains CR, LF or'
        .. " another control character")
    end)

    it("raises when a header value is not a string", function()
      assert.has_error(function()
        hs.request { host = "h", headers = { ["X-A"] = true } }
      end, 'ws.handshake.request: header "X-A" must be a string (got boolean)')
    end)

    it("raises when headers would repeat one the handshake sets", function()
      assert.has_error(function()
        hs.request { host = "h", headers = { upgrade = "h2c" } }
      end, 'ws.handshake.request: header "upgrade" is set by the handshake')
    end)

    it("raises when the origin contains a line break", function()
      assert.has_error(function()
        hs.request { host = "h", origin = "a\nb" }
      end, "ws.handshake.request: origin contains CR, LF or another control"
        .. " character")
    end)

    it("reports argument errors at the caller's line", function()
      local ok, err = pcall(hs.request, { host = 1 })
      assert.is_false(ok)
      assert.equal("ws.handshake.request: host must be a string (got number)",
        err)
      local ok2, err2 = pcall(function() hs.request { host = 1 } end)
      assert.is_false(ok2)
      assert.truthy(err2:find("^[^:]*handshake_spec%.lua:%d+: "))
    end)
  end)

  describe("parse_request", function()
    it("accepts the RFC 6455 sample request", function()
      local req, consumed = hs.parse_request(VALID_REQUEST)
      assert.equal("GET", req.method)
      assert.equal(#VALID_REQUEST, consumed)
    end)

    it("returns the accept value for the request's key", function()
      assert.equal(ACCEPT, hs.parse_request(VALID_REQUEST).accept)
    end)

    it("consumes only the head when frame bytes follow it", function()
      local _, consumed = hs.parse_request(VALID_REQUEST .. "\129\0")
      assert.equal(#VALID_REQUEST, consumed)
    end)

    it("lowercases header names and joins repeated headers", function()
      local req = hs.parse_request(request_with(nil, { "X-A: 1", "x-a: 2" }))
      assert.equal("1, 2", req.headers["x-a"])
    end)

    it("trims whitespace around header values", function()
      local req = hs.parse_request(request_with { Host = "  \texample.com \t" })
      assert.equal("example.com", req.host)
    end)

    it("lists offered protocols in client order across header lines", function()
      local req = hs.parse_request(request_with(nil, {
        "Sec-WebSocket-Protocol: b, ,a", "Sec-WebSocket-Protocol: c" }))
      assert.same({ "b", "a", "c" }, req.protocols)
    end)

    it("lists offered extension names without their parameters", function()
      local req = hs.parse_request(request_with(nil, {
        'Sec-WebSocket-Extensions: permessage-deflate; x="a,b", foo' }))
      assert.same({ "permessage-deflate", "foo" }, req.extensions)
    end)

    it("accepts a later HTTP/1.x minor version", function()
      local req = hs.parse_request(request_with(nil, nil, "GET / HTTP/1.2"))
      assert.equal("1.2", req.version)
    end)

    it("accepts Connection: keep-alive, Upgrade", function()
      local req = hs.parse_request(request_with {
        Connection = "keep-alive, Upgrade" })
      assert.equal("keep-alive, Upgrade", req.headers.connection)
    end)

    it("accepts Upgrade: WebSocket case-insensitively", function()
      local req = hs.parse_request(request_with { Upgrade = "WebSocket" })
      assert.equal("WebSocket", req.headers.upgrade)
    end)

    it("returns incomplete for empty input", function()
      assert.same({ nil, "incomplete" }, refuse(""))
    end)

    it("returns incomplete at every truncation point of a valid request",
      function()
        for i = 0, #VALID_REQUEST - 1 do
          local r, err = hs.parse_request(VALID_REQUEST:sub(1, i))
          assert.is_nil(r, "at " .. i)
          assert.equal("incomplete", err, "at " .. i)
        end
      end)

    it("accepts a head of exactly max_bytes", function()
      local _, consumed = hs.parse_request(VALID_REQUEST,
        { max_bytes = #VALID_REQUEST })
      assert.equal(#VALID_REQUEST, consumed)
    end)

    it("allows more headers than fit the stack array when asked", function()
      local more = {}
      for i = 1, 200 do more[i] = "X-" .. i .. ": v" end
      local _, consumed = hs.parse_request(request_with(nil, more),
        { max_headers = 205, max_bytes = 65536 })
      assert.is_number(consumed)
    end)

    describe("refuses", function()
      it("a method other than GET with 405", function()
        local r = refuse(request_with(nil, nil, "POST /chat HTTP/1.1"))
        assert.same({ nil, "method_not_get", 405 }, { r[1], r[2], r[3] })
      end)

      it("a lowercase get with 405, methods being case-sensitive", function()
        local r = refuse(request_with(nil, nil, "get /chat HTTP/1.1"))
        assert.same({ nil, "method_not_get", 405 }, { r[1], r[2], r[3] })
      end)

      it("with a 405 response that lists the allowed method", function()
        local r = refuse(request_with(nil, nil, "PUT / HTTP/1.1"))
        assert.equal("HTTP/1.1 405 Method Not Allowed\r\n"
          .. "Connection: close\r\nContent-Length: 0\r\nAllow: GET\r\n\r\n",
          r[4])
      end)

      it("a method error as soon as the request line is complete", function()
        local r = refuse("POST / HTTP/1.1\r\n")
        assert.same({ nil, "method_not_get", 405 }, { r[1], r[2], r[3] })
      end)

      it("HTTP/1.0 with 505", function()
        local r = refuse(request_with(nil, nil, "GET /chat HTTP/1.0"))
        assert.same({ nil, "http_version", 505 }, { r[1], r[2], r[3] })
      end)

      it("HTTP/2.0 with 505", function()
        local r = refuse(request_with(nil, nil, "GET /chat HTTP/2.0"))
        assert.same({ nil, "http_version", 505 }, { r[1], r[2], r[3] })
      end)

      it("a garbage request line with 400", function()
        local r = refuse(request_with(nil, nil, "hello there"))
        assert.same({ nil, "bad_request_line", 400 }, { r[1], r[2], r[3] })
      end)

      it("a request line with two spaces with 400", function()
        local r = refuse(request_with(nil, nil, "GET  / HTTP/1.1"))
        assert.same({ nil, "bad_request_line", 400 }, { r[1], r[2], r[3] })
      end)

      it("a request line ended by a bare LF with 400", function()
        local r = refuse("GET / HTTP/1.1\nHost: h\r\n\r\n")
        assert.same({ nil, "bad_request_line", 400 }, { r[1], r[2], r[3] })
      end)

      it("a missing Host with 400", function()
        local r = refuse(request_with { Host = false })
        assert.same({ nil, "missing_host", 400 }, { r[1], r[2], r[3] })
      end)

      it("an empty Host with 400", function()
        local r = refuse(request_with { Host = "" })
        assert.same({ nil, "missing_host", 400 }, { r[1], r[2], r[3] })
      end)

      it("two Host headers with 400", function()
        local r = refuse(request_with(nil, { "Host: other.example" }))
        assert.same({ nil, "bad_header", 400 }, { r[1], r[2], r[3] })
      end)

      it("a missing Upgrade with 400", function()
        local r = refuse(request_with { Upgrade = false })
        assert.same({ nil, "missing_upgrade", 400 }, { r[1], r[2], r[3] })
      end)

      it("an Upgrade to another protocol with 400", function()
        local r = refuse(request_with { Upgrade = "h2c" })
        assert.same({ nil, "missing_upgrade", 400 }, { r[1], r[2], r[3] })
      end)

      it("a missing Connection with 400", function()
        local r = refuse(request_with { Connection = false })
        assert.same({ nil, "missing_connection_upgrade", 400 },
          { r[1], r[2], r[3] })
      end)

      it("a Connection without the upgrade token with 400", function()
        local r = refuse(request_with { Connection = "keep-alive" })
        assert.same({ nil, "missing_connection_upgrade", 400 },
          { r[1], r[2], r[3] })
      end)

      it("a missing key with 400", function()
        local r = refuse(request_with { ["Sec-WebSocket-Key"] = false })
        assert.same({ nil, "bad_key", 400 }, { r[1], r[2], r[3] })
      end)

      it("a key that is not base64 with 400", function()
        local r = refuse(request_with {
          ["Sec-WebSocket-Key"] = "!!!!!!!!!!!!!!!!!!!!!!==" })
        assert.same({ nil, "bad_key", 400 }, { r[1], r[2], r[3] })
      end)

      it("a key that decodes to 15 bytes with 400", function()
        local r = refuse(request_with {
          ["Sec-WebSocket-Key"] = "MDEyMzQ1Njc4OWFiY2Rl" })
        assert.same({ nil, "bad_key", 400 }, { r[1], r[2], r[3] })
      end)

      it("a key that decodes to 17 bytes with 400", function()
        local r = refuse(request_with {
          ["Sec-WebSocket-Key"] = "MDEyMzQ1Njc4OWFiY2RlZmc=" })
        assert.same({ nil, "bad_key", 400 }, { r[1], r[2], r[3] })
      end)

      it("a key with nonzero padding bits with 400", function()
        local r = refuse(request_with {
          ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZR==" })
        assert.same({ nil, "bad_key", 400 }, { r[1], r[2], r[3] })
      end)

      it("two keys with 400", function()
        local r = refuse(request_with(nil, { "Sec-WebSocket-Key: " .. KEY }))
        assert.same({ nil, "bad_key", 400 }, { r[1], r[2], r[3] })
      end)

      it("a missing version with 426", function()
        local r = refuse(request_with { ["Sec-WebSocket-Version"] = false })
        assert.same({ nil, "unsupported_version", 426 }, { r[1], r[2], r[3] })
      end)

      it("version 8 with 426", function()
        local r = refuse(request_with { ["Sec-WebSocket-Version"] = "8" })
        assert.same({ nil, "unsupported_version", 426 }, { r[1], r[2], r[3] })
      end)

      it("version 14 with 426", function()
        local r = refuse(request_with { ["Sec-WebSocket-Version"] = "14" })
        assert.same({ nil, "unsupported_version", 426 }, { r[1], r[2], r[3] })
      end)

      it("with a 426 response that names version 13", function()
        local r = refuse(request_with { ["Sec-WebSocket-Version"] = "8" })
        assert.equal("HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\n"
          .. "Content-Length: 0\r\nSec-WebSocket-Version: 13\r\n\r\n", r[4])
      end)

      it("a header line without a colon with 400", function()
        local r = refuse(request_with(nil, { "X-Broken" }))
        assert.same({ nil, "bad_header", 400 }, { r[1], r[2], r[3] })
      end)

      it("an obs-fold continuation line with 400", function()
        local r = refuse(request_with(nil, { "X-A: one", " two" }))
        assert.same({ nil, "bad_header", 400 }, { r[1], r[2], r[3] })
      end)

      it("whitespace before the colon with 400", function()
        local r = refuse(request_with(nil, { "X-A : one" }))
        assert.same({ nil, "bad_header", 400 }, { r[1], r[2], r[3] })
      end)

      it("a header name with a non-token character with 400", function()
        local r = refuse(request_with(nil, { "X(A): one" }))
        assert.same({ nil, "bad_header", 400 }, { r[1], r[2], r[3] })
      end)

      it("a header value with a control character with 400", function()
        local r = refuse(request_with(nil, { "X-A: a\0b" }))
        assert.same({ nil, "bad_header", 400 }, { r[1], r[2], r[3] })
      end)

      it("a header line ended by a bare LF with 400", function()
        local r = refuse("GET / HTTP/1.1\r\nHost: h\nUpgrade: websocket\r\n")
        assert.same({ nil, "bad_header", 400 }, { r[1], r[2], r[3] })
      end)

      it("more than 64 headers by default with 431", function()
        local more = {}
        for i = 1, 60 do more[i] = "X-" .. i .. ": v" end
        local r = refuse(request_with(nil, more))
        assert.same({ nil, "too_many_headers", 431 }, { r[1], r[2], r[3] })
      end)

      it("more headers than max_headers with 431", function()
        local r = refuse(VALID_REQUEST, { max_headers = 6 })
        assert.same({ nil, "too_many_headers", 431 }, { r[1], r[2], r[3] })
      end)

      it("a head larger than max_bytes with 431", function()
        local r = refuse(VALID_REQUEST, { max_bytes = #VALID_REQUEST - 1 })
        assert.same({ nil, "header_too_large", 431 }, { r[1], r[2], r[3] })
      end)

      it("a head larger than 8192 bytes by default with 431", function()
        local r = refuse(request_with(nil, { "X-Pad: " .. ("a"):rep(8192) }))
        assert.same({ nil, "header_too_large", 431 }, { r[1], r[2], r[3] })
      end)

      it("an incomplete head already past max_bytes with 431", function()
        local r = refuse("GET / HTTP/1.1\r\nX-Pad: " .. ("a"):rep(9000))
        assert.same({ nil, "header_too_large", 431 }, { r[1], r[2], r[3] })
      end)

      it("with a ready-to-send 431 response", function()
        local r = refuse(VALID_REQUEST, { max_bytes = 16 })
        assert.equal("HTTP/1.1 431 Request Header Fields Too Large\r\n"
          .. "Connection: close\r\nContent-Length: 0\r\n\r\n", r[4])
      end)
    end)

    it("raises when bytes is not a string", function()
      assert.has_error(function() hs.parse_request(nil) end,
        "ws.handshake.parse_request: bytes must be a string (got nil)")
    end)

    it("raises when opts is not a table", function()
      assert.has_error(function() hs.parse_request("", 5) end,
        "ws.handshake.parse_request: opts must be a table (got number)")
    end)

    it("raises when max_bytes is negative", function()
      assert.has_error(function() hs.parse_request("", { max_bytes = -1 }) end,
        "ws.handshake.parse_request: opts.max_bytes must be a non-negative"
          .. " integer (got -1)")
    end)
  end)

  describe("subprotocol selection", function()
    it("picks the server's most preferred protocol the client offered",
      function()
        local req = hs.parse_request(VALID_REQUEST,
          { protocols = { "superchat", "chat" } })
        assert.equal("superchat", req.protocol)
      end)

    it("picks none when the client offered none", function()
      local req = hs.parse_request(request_with(), { protocols = { "chat" } })
      assert.is_nil(req.protocol)
    end)

    it("picks none when no offered protocol is supported", function()
      local req = hs.parse_request(VALID_REQUEST, { protocols = { "mqtt" } })
      assert.is_nil(req.protocol)
    end)

    it("picks none when the server supports none", function()
      assert.is_nil(hs.parse_request(VALID_REQUEST).protocol)
    end)

    it("select_protocol follows the supported list's order", function()
      assert.equal("b", hs.select_protocol({ "a", "b" }, { "c", "b", "a" }))
    end)

    it("select_protocol compares names case-sensitively", function()
      assert.is_nil(hs.select_protocol({ "Chat" }, { "chat" }))
    end)

    it("select_protocol raises when offered is not a table", function()
      assert.has_error(function() hs.select_protocol("a", {}) end,
        "ws.handshake.select_protocol: offered must be a table (got string)")
    end)
  end)

  describe("response", function()
    it("builds the exact 101 response for a fixed key", function()
      assert.equal("HTTP/1.1 101 Switching Protocols\r\n"
        .. "Upgrade: websocket\r\n"
        .. "Connection: Upgrade\r\n"
        .. "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        .. "Sec-WebSocket-Protocol: chat\r\n"
        .. "X-Server: t\r\n"
        .. "\r\n",
        hs.response { key = KEY, protocol = "chat",
          headers = { ["X-Server"] = "t" } })
    end)

    it("leaves out Sec-WebSocket-Protocol when none was chosen", function()
      assert.equal("HTTP/1.1 101 Switching Protocols\r\n"
        .. "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        hs.response { key = KEY })
    end)

    it("raises when the key is missing", function()
      assert.has_error(function() hs.response {} end,
        "ws.handshake.response: key must be a string (got nil)")
    end)

    it("raises when the protocol is not a token", function()
      assert.has_error(function() hs.response { key = KEY, protocol = "a b" } end,
        'ws.handshake.response: protocol is not a valid token: "a b"')
    end)
  end)

  describe("error_response", function()
    it("builds the exact refusal with extra headers", function()
      assert.equal("HTTP/1.1 503 Service Unavailable\r\n"
        .. "Connection: close\r\nContent-Length: 0\r\nRetry-After: 30\r\n\r\n",
        hs.error_response(503, { ["Retry-After"] = "30" }))
    end)

    it("adds Sec-WebSocket-Version: 13 to a 426", function()
      assert.equal("HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\n"
        .. "Content-Length: 0\r\nSec-WebSocket-Version: 13\r\n\r\n",
        hs.error_response(426))
    end)

    it("leaves the reason phrase empty for an unlisted status", function()
      assert.equal("HTTP/1.1 499 \r\nConnection: close\r\n"
        .. "Content-Length: 0\r\n\r\n", hs.error_response(499))
    end)

    it("raises when the status is not an integer", function()
      assert.has_error(function() hs.error_response("400") end,
        "ws.handshake.error_response: status must be an integer from 100 to"
          .. " 599 (got 400)")
    end)

    it("raises when the status is out of range", function()
      assert.has_error(function() hs.error_response(600) end,
        "ws.handshake.error_response: status must be an integer from 100 to"
          .. " 599 (got 600)")
    end)

    it("raises when headers would repeat Content-Length", function()
      assert.has_error(function()
        hs.error_response(400, { ["Content-Length"] = "5" })
      end, 'ws.handshake.error_response: header "Content-Length" is set by'
        .. " the handshake")
    end)
  end)

  describe("parse_response", function()
    local OPTS = { key = KEY, protocols = { "chat", "superchat" } }

    it("accepts a valid 101 response", function()
      local resp, consumed = hs.parse_response(VALID_RESPONSE, OPTS)
      assert.same({
        status = 101, reason = "Switching Protocols", protocol = "chat",
        extensions = {},
        headers = {
          upgrade = "websocket", connection = "Upgrade",
          ["sec-websocket-accept"] = ACCEPT, ["sec-websocket-protocol"] = "chat",
        },
      }, resp)
      assert.equal(#VALID_RESPONSE, consumed)
    end)

    it("consumes only the head when frame bytes follow it", function()
      local _, consumed = hs.parse_response(VALID_RESPONSE .. "\129\2hi", OPTS)
      assert.equal(#VALID_RESPONSE, consumed)
    end)

    it("accepts a response built by response()", function()
      local resp = hs.parse_response(hs.response { key = KEY }, { key = KEY })
      assert.equal(101, resp.status)
    end)

    it("accepts an offered extension with parameters", function()
      local resp = hs.parse_response(response_with(nil, {
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover" }),
        { key = KEY, extensions = { "permessage-deflate; client_max_window_bits" } })
      assert.same({ "permessage-deflate" }, resp.extensions)
    end)

    it("returns incomplete at every truncation point", function()
      for i = 0, #VALID_RESPONSE - 1 do
        local r, err = hs.parse_response(VALID_RESPONSE:sub(1, i), OPTS)
        assert.is_nil(r, "at " .. i)
        assert.equal("incomplete", err, "at " .. i)
      end
    end)

    it("refuses a 403, keeping its status and headers", function()
      local r, err, status, resp = hs.parse_response(head {
        "HTTP/1.1 403 Forbidden", "X-Reason: banned" }, OPTS)
      assert.same({ nil, "unexpected_status", 403, "banned" },
        { r, err, status, resp.headers["x-reason"] })
    end)

    it("refuses a 503 with its Retry-After readable", function()
      local _, _, _, resp = hs.parse_response(head {
        "HTTP/1.1 503 Service Unavailable", "Retry-After: 30",
        "Content-Length: 0" }, OPTS)
      assert.equal("30", resp.headers["retry-after"])
    end)

    it("refuses a garbage status line", function()
      assert.same({ nil, "bad_status_line" },
        { hs.parse_response(head { "ICY 200 OK" }, OPTS) })
    end)

    it("refuses a missing Upgrade", function()
      assert.same({ nil, "missing_upgrade", 101 },
        { hs.parse_response(response_with { Upgrade = false }, OPTS) })
    end)

    it("refuses a missing Connection", function()
      assert.same({ nil, "missing_connection_upgrade", 101 },
        { hs.parse_response(response_with { Connection = false }, OPTS) })
    end)

    it("refuses a wrong accept value", function()
      assert.same({ nil, "bad_accept", 101 }, { hs.parse_response(
        response_with { ["Sec-WebSocket-Accept"] = hs.accept("other") },
        OPTS) })
    end)

    it("refuses a missing accept value", function()
      assert.same({ nil, "bad_accept", 101 }, { hs.parse_response(
        response_with { ["Sec-WebSocket-Accept"] = false }, OPTS) })
    end)

    it("refuses a protocol that was not offered", function()
      assert.same({ nil, "unexpected_protocol", 101 }, { hs.parse_response(
        response_with(nil, { "Sec-WebSocket-Protocol: mqtt" }), OPTS) })
    end)

    it("refuses a protocol when none was offered", function()
      assert.same({ nil, "unexpected_protocol", 101 },
        { hs.parse_response(VALID_RESPONSE, { key = KEY }) })
    end)

    it("refuses more than one protocol", function()
      assert.same({ nil, "unexpected_protocol", 101 }, { hs.parse_response(
        response_with(nil, { "Sec-WebSocket-Protocol: chat, superchat" }),
        OPTS) })
    end)

    it("refuses an extension that was not offered", function()
      assert.same({ nil, "unexpected_extension", 101 }, { hs.parse_response(
        response_with(nil, { "Sec-WebSocket-Extensions: permessage-deflate" }),
        OPTS) })
    end)

    it("refuses a head larger than max_bytes", function()
      local o = { key = KEY, protocols = { "chat" }, max_bytes = 20 }
      assert.same({ nil, "header_too_large" },
        { hs.parse_response(VALID_RESPONSE, o) })
    end)

    it("raises when opts.key is missing", function()
      assert.has_error(function() hs.parse_response(VALID_RESPONSE, {}) end,
        "ws.handshake.parse_response: opts.key must be a string (got nil)")
    end)

    it("raises when opts is missing", function()
      assert.has_error(function() hs.parse_response(VALID_RESPONSE) end,
        "ws.handshake.parse_response: opts must be a table (got nil)")
    end)

    it("raises when an offered extension is not a string", function()
      assert.has_error(function()
        hs.parse_response(VALID_RESPONSE, { key = KEY, extensions = { 1 } })
      end, "ws.handshake.parse_response: opts.extensions[1] must be a string"
        .. " (got number)")
    end)
  end)

  describe("client and server together", function()
    it("agree on the subprotocol the server prefers", function()
      local bytes, key = hs.request { host = "h",
        protocols = { "v1.chat", "v2.chat" } }
      local req = hs.parse_request(bytes,
        { protocols = { "v2.chat", "v1.chat" } })
      local resp = hs.parse_response(
        hs.response { key = req.key, protocol = req.protocol },
        { key = key, protocols = { "v1.chat", "v2.chat" } })
      assert.equal("v2.chat", resp.protocol)
    end)
  end)
end)
