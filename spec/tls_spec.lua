-- wss:// end to end with our client and our server: what verification
-- accepts and what it refuses (always 1015 with a clear message).
local ws = require "ws"
local certs = require "support.certs"

describe("TLS failure modes", function()
  local dir
  local servers = {}

  lazy_setup(function() dir = certs.make() end)
  lazy_teardown(function()
    for _, s in ipairs(servers) do s:close(1) end
    certs.remove(dir)
  end)

  local function serve(leaf, extra)
    local tls = { cert_file = dir .. "/" .. leaf .. ".pem",
      key_file = dir .. "/" .. leaf .. ".key" }
    for k, v in pairs(extra or {}) do tls[k] = v end
    local s = assert(ws.listen{ port = 0, tls = tls, handler = function(conn)
      for d, k in conn:messages() do conn:send(d, k) end
    end })
    servers[#servers + 1] = s
    return s
  end

  local function connect(s, host, tls)
    return ws.connect(("wss://%s:%d/"):format(host, s.port),
      { tls = tls, timeout = 5 })
  end

  local function refused(pattern, conn, err, ev)
    assert.is_nil(conn)
    assert.are.same({ 1015, "tls_handshake", "tls", false },
      { ev.code, ev.name, ev.error, ev.clean })
    assert.matches(pattern, err)
  end

  it("connects to a server whose certificate the CA file vouches for",
    function()
      local s = serve("server")
      local conn = assert(connect(s, "localhost", { ca_file = dir .. "/ca.pem" }))
      assert.is_true(conn:send("secret"))
      assert.are.equal("secret", (conn:receive(5)))
      conn:close()
    end)

  it("checks an IP address against the certificate", function()
    local s = serve("server")
    local conn = assert(connect(s, "127.0.0.1", { ca_file = dir .. "/ca.pem" }))
    conn:close()
  end)

  it("verifies by default, so a private CA is refused without ca_file",
    function()
      local s = serve("server")
      refused("certificate verify failed", connect(s, "localhost", nil))
    end)

  it("refuses a self-signed certificate", function()
    local s = serve("self")
    refused("self%-signed certificate", connect(s, "localhost", { ca_file = dir .. "/ca.pem" }))
  end)

  it("refuses a certificate from an untrusted CA", function()
    local s = serve("untrusted")
    refused("certificate verify failed", connect(s, "localhost", { ca_file = dir .. "/ca.pem" }))
  end)

  it("refuses an expired certificate", function()
    local s = serve("expired")
    refused("certificate has expired", connect(s, "localhost", { ca_file = dir .. "/ca.pem" }))
  end)

  it("refuses a certificate for another host name", function()
    local s = serve("other")
    refused("[Hh]ostname mismatch", connect(s, "localhost", { ca_file = dir .. "/ca.pem" }))
  end)

  it("refuses when the TLS versions do not overlap", function()
    local s = serve("server", { min_version = "1.3" })
    refused("TLS handshake with localhost failed", connect(s, "localhost", { ca_file = dir .. "/ca.pem",
      max_version = "1.2" }))
  end)

  it("refuses when no cipher is shared", function()
    local s = serve("server", { max_version = "1.2",
      ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384" })
    refused("TLS handshake with localhost failed", connect(s, "localhost", { ca_file = dir .. "/ca.pem",
      max_version = "1.2", ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256" }))
  end)

  it("connects to a self-signed server only with verify = false", function()
    local s = serve("self")
    local conn = assert(connect(s, "localhost", { verify = false }))
    assert.is_true(conn:send("x"))
    assert.are.equal("x", (conn:receive(5)))
    conn:close()
  end)

  it("requires a client certificate when the server asks for one", function()
    local s = serve("server", { ca_file = dir .. "/ca.pem", verify_client = true })
    local conn = connect(s, "localhost", { ca_file = dir .. "/ca.pem" })
    -- TLS 1.3 may report the refusal after the handshake: either way the
    -- connection must not open
    if conn then
      local _, err, ev = conn:receive(5)
      assert.are.equal("closed", err)
      assert.are.equal(1006, ev.code)
    end
    local ok = assert(connect(s, "localhost", { ca_file = dir .. "/ca.pem",
      cert_file = dir .. "/client.pem", key_file = dir .. "/client.key" }))
    assert.is_true(ok:send("with cert"))
    assert.are.equal("with cert", (ok:receive(5)))
    ok:close()
  end)
end)
