local url = require "ws.url"

describe("ws.url.parse", function()
  local good = {
    { "ws://example.com", { "ws", false, "example.com", 80, "/",
      "example.com" } },
    { "wss://example.com", { "wss", true, "example.com", 443, "/",
      "example.com" } },
    { "ws://Example.COM:8080/chat?room=1", { "ws", false, "example.com",
      8080, "/chat?room=1", "example.com:8080" } },
    { "wss://127.0.0.1:443/x", { "wss", true, "127.0.0.1", 443, "/x",
      "127.0.0.1" } },
    { "ws://[::1]:9000/", { "ws", false, "::1", 9000, "/", "[::1]:9000" } },
    { "ws://[::1]/", { "ws", false, "::1", 80, "/", "[::1]" } },
    { "WS://host?q", { "ws", false, "host", 80, "/?q", "host" } },
    -- Unix sockets, Node ws's form: the socket path up to the first ":",
    -- the request target after it; Host "localhost" without an authority
    { "ws+unix:///tmp/x.sock:/chat?room=1", { "ws+unix", false, "localhost",
      80, "/chat?room=1", "localhost", "/tmp/x.sock" } },
    { "ws+unix:///tmp/x.sock", { "ws+unix", false, "localhost", 80, "/",
      "localhost", "/tmp/x.sock" } },
    { "ws+unix:///tmp/x.sock:", { "ws+unix", false, "localhost", 80, "/",
      "localhost", "/tmp/x.sock" } },
    { "wss+unix:///run/app.sock:/feed", { "wss+unix", true, "localhost",
      443, "/feed", "localhost", "/run/app.sock" } },
    { "WS+UNIX:///a.sock:/b:/c", { "ws+unix", false, "localhost", 80,
      "/b:/c", "localhost", "/a.sock" } },
    { "ws+unix:///a.sock:x", { "ws+unix", false, "localhost", 80, "/x",
      "localhost", "/a.sock" } },
    -- as in Node ws, a query with no ":" belongs to the socket path
    { "ws+unix:///tmp/x.sock?q", { "ws+unix", false, "localhost", 80, "/",
      "localhost", "/tmp/x.sock?q" } },
    { "ws+unix://App:8080/tmp/x.sock:/", { "ws+unix", false, "app", 8080,
      "/", "app:8080", "/tmp/x.sock" } },
  }
  for _, c in ipairs(good) do
    it("parses " .. c[1], function()
      local u = assert(url.parse(c[1]))
      assert.are.same(c[2], { u.scheme, u.secure, u.host, u.port, u.target,
        u.host_header, u.unix })
    end)
  end

  local bad = {
    { "http://example.com/", "unsupported scheme 'http' (ws, wss, ws+unix "
      .. "or wss+unix expected)" },
    { "ws+unix://", "no socket path in URL (ws+unix:///path/to.sock:/resource "
      .. "expected): ws+unix://" },
    { "ws+unix:///", "no socket path in URL (ws+unix:///path/to.sock:/resource "
      .. "expected): ws+unix:///" },
    { "ws+unix:///:/chat", "no socket path in URL "
      .. "(ws+unix:///path/to.sock:/resource expected): ws+unix:///:/chat" },
    { "ws+unix:///a.sock#f", "a WebSocket URL may not have a fragment" },
    { "ws+unix://u@h/a.sock", "user information in the URL is not supported" },
    { "example.com", "not a URL: example.com" },
    { "ws://", "no host in URL: ws://" },
    { "ws://host:0/", "bad port in URL: ws://host:0/" },
    { "ws://host:70000/", "bad port in URL: ws://host:70000/" },
    { "ws://host/#frag", "a WebSocket URL may not have a fragment" },
    { "ws://user@host/", "user information in the URL is not supported" },
  }
  for _, c in ipairs(bad) do
    it("rejects " .. c[1], function()
      assert.are.same({ nil, c[2] }, { url.parse(c[1]) })
    end)
  end
end)
