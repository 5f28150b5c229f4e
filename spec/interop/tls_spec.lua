-- wss:// with real peers: our client against Node `ws` and Python
-- `websockets` TLS servers, and their clients against our TLS server.
-- The certificates are made here with the openssl command (peers.certs):
-- a CA, a server certificate from it for DNS:localhost and IP:127.0.0.1,
-- one from it for DNS:other.example only, and a self-signed one.
local ws = require "ws"
local peers = require "interop.peers"

local function summary(ev)
  return {
    code = ev.code, name = ev.name, reason = ev.reason, clean = ev.clean,
    initiator = ev.initiator, error = ev.error,
  }
end

-- The close event of a connection refused by our TLS verification.
local TLS_REFUSED = {
  code = 1015, name = "tls_handshake", reason = "", clean = false,
  initiator = "transport", error = "tls",
}

describe("wss://", function()
  local dir

  lazy_setup(function()
    dir = peers.certs()
  end)

  lazy_teardown(function()
    peers.remove_dir(dir)
  end)

  for _, impl in ipairs({ "node", "python" }) do
    describe("our client against a " .. impl .. " server", function()
      local good, self_signed, other

      lazy_setup(function()
        local function start(name)
          return peers.server(impl, { cert = dir .. "/" .. name .. ".pem",
            key = dir .. "/" .. name .. ".key" })
        end
        good, self_signed, other = start("server"), start("self"),
          start("other")
      end)

      lazy_teardown(function()
        for _, s in ipairs({ good, self_signed, other }) do
          if s then s:stop() end
        end
      end)

      local function url(server, host)
        return ("wss://%s:%d/"):format(host, server.port)
      end

      local function connect(server, host)
        return ws.connect(url(server, host),
          { tls = { ca_file = dir .. "/ca.pem" }, timeout = 10 })
      end

      it("connects to localhost with a certificate from ca_file's CA",
          function()
        local conn, err = connect(good, "localhost")
        assert(conn, err)
        assert.is_true(conn:send("secure hello"))
        assert.are.same({ "secure hello", "text" }, { conn:receive(5) })
        assert.are.same({ code = 1000, name = "normal", reason = "",
          clean = true, initiator = "local" }, summary(conn:close()))
      end)

      it("checks an IP address against the certificate's IP names",
          function()
        local conn, err = connect(good, "127.0.0.1")
        assert(conn, err)
        assert.is_true(conn:send("cmd:send text 126"))
        assert.are.same({ peers.payload("text", 126), "text" },
          { conn:receive(5) })
        conn:close()
      end)

      it("round-trips a 16 MiB binary message", function()
        local conn, err = connect(good, "localhost")
        assert(conn, err)
        local payload = peers.payload("binary", 16 * 1024 * 1024)
        assert.is_true(conn:send(payload, "binary"))
        local data, kind = conn:receive(30)
        assert.are.equal("binary", kind)
        assert.are.equal(#payload, data and #data)
        assert.is_true(data == payload, "payload differs")
        conn:close()
      end)

      it("refuses a self-signed certificate with 1015", function()
        local conn, err, ev = connect(self_signed, "localhost")
        assert.is_nil(conn)
        assert.are.same(TLS_REFUSED, summary(ev))
        -- OpenSSL 1.1 says "self signed", 3.x "self-signed"
        assert.matches("^TLS handshake with localhost failed: certificate "
          .. "verify failed: self.signed certificate$", err)
        assert.are.equal(err, ev.message)
      end)

      it("refuses a certificate for another host name with 1015", function()
        local conn, err, ev = connect(other, "localhost")
        assert.is_nil(conn)
        assert.are.same(TLS_REFUSED, summary(ev))
        assert.are.equal("TLS handshake with localhost failed: certificate "
          .. "verify failed: hostname mismatch", err)
      end)

      it("refuses wss://127.0.0.1 when the certificate names only "
          .. "other.example", function()
        local conn, err, ev = connect(other, "127.0.0.1")
        assert.is_nil(conn)
        assert.are.same(TLS_REFUSED, summary(ev))
        assert.are.equal("TLS handshake with 127.0.0.1 failed: certificate "
          .. "verify failed: IP address mismatch", err)
      end)
    end)

    describe("a " .. impl .. " client against our server", function()
      local server, count = nil, 0

      lazy_setup(function()
        server = assert(ws.listen({ host = "127.0.0.1", port = 0,
          tls = { cert_file = dir .. "/server.pem",
                  key_file = dir .. "/server.key" },
          handler = function(conn)
            for data, kind in conn:messages() do conn:send(data, kind) end
          end }))
      end)

      lazy_teardown(function()
        if server then server:close(2) end
      end)

      local function url(host)
        count = count + 1
        return ("wss://%s:%d/%s-%d"):format(host, server.port, impl, count)
      end

      it("connects to localhost trusting our CA and exchanges messages",
          function()
        local lines = peers.run_client(impl, url("localhost"),
          { "echo text 126", "echo binary 65536", "echo utf8 100",
            "close 4005 tls bye" }, { ca = dir .. "/ca.pem" })
        assert.are.same({
          "echo text 126: text 126 ok",
          "echo binary 65536: binary 65536 ok",
          "echo utf8 100: text 2300 ok",
          "closed 4005 ",
        }, lines)
      end)

      it("connects to 127.0.0.1, named in the certificate", function()
        local lines = peers.run_client(impl, url("127.0.0.1"),
          { "echo text 5" }, { ca = dir .. "/ca.pem" })
        assert.are.same({ "echo text 5: text 5 ok" }, lines)
      end)

      it("is refused by a client that does not trust our CA", function()
        local before = server.tls_failures
        local lines = peers.run_client(impl, url("localhost"),
          { "echo text 5" })
        local expected = impl == "node" and "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
          or "CERTIFICATE_VERIFY_FAILED"
        assert.are.same({ "error " .. expected }, lines)
        -- our side of the failed handshake is counted
        peers.drive("our server to count the failed handshake", function()
          if server.tls_failures > before then return true end
        end, 5)
        assert.are.equal(before + 1, server.tls_failures)
      end)
    end)
  end
end)
