-- Headless Chromium against our server with permessage-deflate: the
-- browser's own WebSocket (which offers "permessage-deflate;
-- client_max_window_bits" on every connection) in a page from a file://
-- URL (spec/interop/browser/deflate.html, started by browser.lua),
-- remote-controlled by our server's handler: the page echoes what we
-- send and sends the payloads we ask for, and reports how the connection
-- closed on a second connection. Everything is checked here, on our side.
-- Loopback only; every wait is bounded.
local ws = require "ws"
local peers = require "interop.peers"
local browser = require "interop.browser"

local MiB = 1024 * 1024
local SIZES = { 0, 1, 125, 126, 65535, 65536, MiB }
local THRESHOLD = 128 -- our default: shorter messages go uncompressed
local CHROME_OFFER = "permessage-deflate; client_max_window_bits"

local function wire_kind(kind)
  return kind == "binary" and "binary" or "text"
end

local function agreed(snct, cnct, smwb, cmwb)
  return { ["permessage-deflate"] = {
    server_no_context_takeover = snct, client_no_context_takeover = cnct,
    server_max_window_bits = smwb, client_max_window_bits = cmwb,
  } }
end

local payload = peers.payload

-- What we send for the page to echo: { kind, size, send options }.
local function echo_cases(big)
  local cases = {}
  for _, kind in ipairs({ "text", "json", "binary" }) do
    for _, size in ipairs(SIZES) do cases[#cases + 1] = { kind, size } end
  end
  cases[#cases + 1] = { "json", 65536, { fragment = 1000 } }
  cases[#cases + 1] = { "binary", MiB, { fragment = 65536 } }
  -- frames that end inside UTF-8 sequences
  cases[#cases + 1] = { "utf8", 100, { fragment = 7 } }
  cases[#cases + 1] = { "json", 5000, { compress = false } }
  cases[#cases + 1] = { "text", 10, { compress = true } }
  if big then cases[#cases + 1] = { "json", 16 * MiB } end
  return cases
end

-- What we ask the page to send: { kind, size }.
local function send_cases(big)
  local cases = { { "json", MiB }, { "text", 65536 }, { "binary", 65536 },
    { "utf8", 300 }, { "json", 0 } }
  if big then cases[#cases + 1] = { "binary", 16 * MiB } end
  return cases
end

local function bytes_of(kind, size)
  return #payload(kind, size)
end

-- Our server's `deflate` and what Chromium must be answered.
local CONFIGS = {
  { name = "our defaults (deflate = true)", deflate = true, big = true,
    answer = "permessage-deflate; server_max_window_bits=12; "
      .. "client_max_window_bits=12",
    agreed = agreed(false, false, 12, 12) },
  { name = "server_no_context_takeover",
    deflate = { server_no_context_takeover = true },
    answer = "permessage-deflate; server_no_context_takeover; "
      .. "server_max_window_bits=12; client_max_window_bits=12",
    agreed = agreed(true, false, 12, 12) },
  { name = "client_no_context_takeover, windows 9 and 8",
    deflate = { client_no_context_takeover = true,
      server_max_window_bits = 9, client_max_window_bits = 8 },
    small_windows = true,
    answer = "permessage-deflate; client_no_context_takeover; "
      .. "server_max_window_bits=9; client_max_window_bits=8",
    agreed = agreed(false, true, 9, 8) },
  { name = "windows 15", deflate = { server_max_window_bits = 15,
      client_max_window_bits = 15 },
    answer = "permessage-deflate; server_max_window_bits=15; "
      .. "client_max_window_bits=15",
    agreed = agreed(false, false, 15, 15) },
  { name = "deflate off", deflate = false, answer = "", agreed = {} },
}

-- The handler: for the page's connection (/page) records the offer,
-- conn.extensions and the hello, runs the cases recording each result,
-- then the counters, and closes with 1000; for /report records the
-- page's report.
local function make_handler(rec, big)
  return function(conn, request)
    if request.path == "/report" then
      rec.report = conn:receive(30) or "no report"
      for _ in conn:messages() do end
      return
    end
    rec.offer = request.headers["sec-websocket-extensions"] or "-"
    rec.extensions = conn.extensions
    rec.hello = conn:receive(30)
    rec.echoes, rec.sent = {}, {}
    for _, c in ipairs(echo_cases(big)) do
      local expected = payload(c[1], c[2])
      conn:send(expected, wire_kind(c[1]), c[3])
      local data, kind = conn:receive(60)
      rec.echoes[#rec.echoes + 1] = (kind == wire_kind(c[1])
        and data == expected) and "ok" or ("bad: %s %s"):format(
          tostring(kind), data and #data or "-")
    end
    for _, c in ipairs(send_cases(big)) do
      conn:send(("cmd:send %s %d"):format(c[1], c[2]), "text",
        { compress = false })
      local data, kind = conn:receive(60)
      local expected = payload(c[1], c[2])
      rec.sent[#rec.sent + 1] = (kind == wire_kind(c[1])
        and data == expected) and "ok" or ("bad: %s %s"):format(
          tostring(kind), data and #data or "-")
    end
    rec.stats = conn:deflate_stats()
    rec.close = conn:close(1000, "done")
  end
end

local function all_ok(n)
  local t = {}
  for i = 1, n do t[i] = "ok" end
  return t
end

for _, cfg in ipairs(CONFIGS) do
  describe("headless Chromium against our server with " .. cfg.name,
      function()
    local server, page
    local rec = {}

    lazy_setup(function()
      assert(browser.available(), browser.CHROMIUM .. " is not installed")
      server = assert(ws.listen({ host = "127.0.0.1", port = 0,
        deflate = cfg.deflate, max_message_size = 16 * MiB,
        handler = make_handler(rec, cfg.big) }))
      local base = "ws://127.0.0.1:" .. server.port
      page = browser.open(base .. "/page", base .. "/report")
      local ok, err = pcall(peers.drive, "the page's report", function()
        return rec.report
      end, 90)
      if not ok then
        error(("%s\nrecorded: hello=%s echoes=%d sent=%d\nchromium:\n%s")
          :format(err, tostring(rec.hello), rec.echoes and #rec.echoes or 0,
            rec.sent and #rec.sent or 0, page:stderr():sub(-2000)), 0)
      end
    end)

    lazy_teardown(function()
      if page then page:stop() end
      if server then server:close(2) end
    end)

    it("is offered " .. CHROME_OFFER, function()
      assert.are.equal(CHROME_OFFER, rec.offer)
    end)

    it(("answers %q, as the page's ws.extensions says"):format(cfg.answer),
        function()
      assert.are.equal(("hello ext=%s protocol="):format(cfg.answer),
        rec.hello)
      assert.are.same(cfg.agreed, rec.extensions)
    end)

    it("gets every message of 0 B to 1 MiB back byte for byte, single "
        .. "frames and fragmented", function()
      assert.are.same(all_ok(#echo_cases(cfg.big)), rec.echoes)
    end)

    it("receives the payloads the page generates byte for byte", function()
      assert.are.same(all_ok(#send_cases(cfg.big)), rec.sent)
    end)

    if next(cfg.agreed) then
      it("compresses what it sends by its threshold, and the browser "
          .. "compresses too", function()
        local tx = 0
        for _, c in ipairs(echo_cases(cfg.big)) do
          local n = bytes_of(c[1], c[2])
          local opts = c[3] or {}
          if opts.compress == true
              or (opts.compress == nil and n >= THRESHOLD) then
            tx = tx + n
          end
        end
        assert.are.equal(tx, rec.stats.tx_raw)
        -- halved, except that with 2^9-byte windows the binary payload
        -- (period 256) cannot shrink: then just smaller
        assert.is_true(rec.stats.tx_wire * (cfg.small_windows and 1 or 2)
          < rec.stats.tx_raw)
        -- what Chromium compresses is its business; at least the long
        -- JSON it generated came compressed, and all of it shrank
        assert.is_true(rec.stats.rx_raw >= MiB, tostring(rec.stats.rx_raw))
        assert.is_true(rec.stats.rx_wire * 2 < rec.stats.rx_raw)
      end)
    else
      it("sends and receives plain frames", function()
        assert.are.same({ tx_raw = 0, tx_wire = 0, rx_wire = 0, rx_raw = 0 },
          rec.stats)
      end)
    end

    it("closes with a clean 1000 the page sees", function()
      assert.are.same({ code = 1000, clean = true, initiator = "local" },
        { code = rec.close.code, clean = rec.close.clean,
          initiator = rec.close.initiator })
      assert.are.equal("closed code=1000 clean=true reason=done", rec.report)
    end)
  end)
end
