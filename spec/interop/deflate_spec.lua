-- permessage-deflate (RFC 7692) with real peers: our client against Node
-- `ws` and Python `websockets` servers, their clients against our server
-- (spec/interop/node_*.js, py_*.py, with --deflate), and our client
-- against our own server. For each pairing: what was offered and
-- answered (the raw Sec-WebSocket-Extensions the peer saw, and our
-- conn.extensions), payloads of 0 B to 16 MiB round-tripped byte for byte
-- as single frames and fragmented, with and without context takeover,
-- and that compression really happened: the peers count the compressed
-- payload bytes they send and inflate (node_deflate.js, py_deflate.py),
-- which must equal our conn:deflate_stats() on the other end of the
-- wire. Every connection ends with a clean 1000 close. Loopback only;
-- every wait is bounded.
local ws = require "ws"
local peers = require "interop.peers"

local MiB = 1024 * 1024
local BIG = 16 * MiB -- our default max_message_size, exactly
local SIZES = { 0, 1, 125, 126, 65535, 65536, MiB }
local KINDS = { "text", "json", "binary" } -- json is sent as text
local THRESHOLD = 128 -- our default: shorter messages go uncompressed
local OUR_OFFER = "permessage-deflate; client_max_window_bits"

local function wire_kind(kind)
  return kind == "binary" and "binary" or "text"
end

local function params(snct, cnct, smwb, cmwb)
  return {
    server_no_context_takeover = snct, client_no_context_takeover = cnct,
    server_max_window_bits = smwb, client_max_window_bits = cmwb,
  }
end

local function agreed(snct, cnct, smwb, cmwb)
  return { ["permessage-deflate"] = params(snct, cnct, smwb, cmwb) }
end

-- Compare long strings without printing megabytes when they differ.
local function assert_payload(expected, kind, data, got_kind)
  assert.are.equal(kind, got_kind)
  assert.are.equal(#expected, data and #data)
  assert.is_true(data == expected, "payload differs")
end

-- Which shared payload a message is, checked byte for byte.
local function classify(data, kind)
  local n = #data
  for _, k in ipairs({ "binary", "text", "json" }) do
    if wire_kind(k) == kind and data == peers.payload(k, n) then
      return ("%s %d %s"):format(kind, n, k)
    end
  end
  local sample = #peers.UTF8_SAMPLE
  if n % sample == 0 and data == peers.payload("utf8", n / sample) then
    return ("%s %d utf8"):format(kind, n)
  end
  return ("%s %d other"):format(kind, n)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- What a peer's counters must be, given ours on the other end of the
-- same connection: their rx is our tx and the other way round, and
-- tx_msgs/rx_msgs the compressed messages each way.
local function mirrored(ours, our_tx_msgs, our_rx_msgs)
  return {
    tx_raw = ours.rx_raw, tx_wire = ours.rx_wire,
    rx_wire = ours.tx_wire, rx_raw = ours.tx_raw,
    tx_msgs = our_rx_msgs, rx_msgs = our_tx_msgs,
  }
end

-- Compression really happened both ways: at least halved (the payloads
-- are mostly text and JSON, which shrink to a few percent).
local function assert_compressed(s)
  assert.is_true(s.tx_raw > 0 and s.tx_wire * 2 < s.tx_raw,
    ("sent %d bytes as %d"):format(s.tx_raw, s.tx_wire))
  assert.is_true(s.rx_raw > 0 and s.rx_wire * 2 < s.rx_raw,
    ("received %d bytes as %d"):format(s.rx_raw, s.rx_wire))
end

-- The close of our side, reduced to how it ended.
local function ending(ev)
  return ev and { code = ev.code, clean = ev.clean, initiator = ev.initiator }
end

------------------------------------------------------------------------
-- our client against a server peer

-- The server peers with compression on, the parameters they answer our
-- default offer with, and what conn.extensions must then say.
local SERVERS = {
  { impl = "node", name = "defaults (threshold 0)",
    deflate = '{"threshold":0}', big = true,
    answer = "permessage-deflate",
    agreed = agreed(false, false, 15, 15) },
  { impl = "node", name = "serverNoContextTakeover",
    deflate = '{"threshold":0,"serverNoContextTakeover":true}',
    answer = "permessage-deflate; server_no_context_takeover",
    agreed = agreed(true, false, 15, 15) },
  { impl = "node", name = "clientNoContextTakeover",
    deflate = '{"threshold":0,"clientNoContextTakeover":true}',
    answer = "permessage-deflate; client_no_context_takeover",
    agreed = agreed(false, true, 15, 15) },
  { impl = "node", name = "serverMaxWindowBits 10",
    deflate = '{"threshold":0,"serverMaxWindowBits":10}',
    answer = "permessage-deflate; server_max_window_bits=10",
    agreed = agreed(false, false, 10, 15) },
  { impl = "node", name = "clientMaxWindowBits 9",
    deflate = '{"threshold":0,"clientMaxWindowBits":9}',
    answer = "permessage-deflate; client_max_window_bits=9",
    agreed = agreed(false, false, 15, 9) },
  { impl = "node", name = "all four, both windows 8",
    deflate = '{"threshold":0,"serverNoContextTakeover":true,'
      .. '"clientNoContextTakeover":true,"serverMaxWindowBits":8,'
      .. '"clientMaxWindowBits":8}',
    -- ws keeps the offer's parameter first
    answer = "permessage-deflate; client_max_window_bits=8; "
      .. "server_no_context_takeover; client_no_context_takeover; "
      .. "server_max_window_bits=8",
    agreed = agreed(true, true, 8, 8) },
  { impl = "python", name = "its default compression",
    deflate = "{}", big = true,
    answer = "permessage-deflate; server_max_window_bits=12; "
      .. "client_max_window_bits=12",
    agreed = agreed(false, false, 12, 12) },
  { impl = "python", name = "both no_context_takeover, windows 10 and 9",
    deflate = '{"server_no_context_takeover":true,'
      .. '"client_no_context_takeover":true,"server_max_window_bits":10,'
      .. '"client_max_window_bits":9}',
    answer = "permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover; server_max_window_bits=10; "
      .. "client_max_window_bits=9",
    agreed = agreed(true, true, 10, 9) },
}

for _, cfg in ipairs(SERVERS) do
  describe(("our client (deflate on) against a %s server with %s")
      :format(cfg.impl, cfg.name), function()
    local server
    local opened, count = {}, 0

    lazy_setup(function()
      server = peers.server(cfg.impl, { deflate = cfg.deflate })
    end)

    lazy_teardown(function()
      if server then server:stop() end
    end)

    after_each(function()
      for i = #opened, 1, -1 do
        if not opened[i].close_event then opened[i]:abort() end
        opened[i] = nil
      end
    end)

    local function open(opts)
      count = count + 1
      local path = "/deflate-" .. count
      local conn, err = ws.connect(server.url(path), opts)
      assert(conn, err)
      opened[#opened + 1] = conn
      return conn, path
    end

    -- The peer's counters, asked for with an uncompressed command (so
    -- that the command itself is not counted).
    local function their_counters(conn)
      assert.is_true(conn:send("cmd:stats", "text", { compress = false }))
      local reply = assert(conn:receive(10))
      return peers.counters(assert(reply:match("^stats (.*)$"), reply))
    end

    -- Close with 1000; the server must log that close code.
    local function close_clean(conn, path)
      local ev = conn:close(1000, "done")
      assert.are.same({ code = 1000, clean = true, initiator = "local" },
        ending(ev))
      server:wait_line("close " .. path .. " 1000 done", 10)
    end

    local function echo(conn, kind, size, opts)
      local payload = peers.payload(kind, size)
      assert.is_true(conn:send(payload, wire_kind(kind), opts))
      local data, got = conn:receive(30)
      assert_payload(payload, wire_kind(kind), data, got)
    end

    it("agrees on " .. cfg.answer, function()
      local conn, path = open()
      assert.are.same(cfg.agreed, conn.extensions)
      assert.are.equal(OUR_OFFER, server:wait_prefix("offer " .. path .. " ", 5))
      assert.are.equal(cfg.answer,
        server:wait_prefix("answer " .. path .. " ", 5))
      close_clean(conn, path)
    end)

    it("round-trips text, JSON and binary messages of 0 B to 1 MiB on one "
        .. "connection, compressed both ways", function()
      local conn, path = open()
      local sent, ours_compressed = 0, 0
      for _, kind in ipairs(KINDS) do
        for _, size in ipairs(SIZES) do
          echo(conn, kind, size)
          sent = sent + 1
          if size >= THRESHOLD then ours_compressed = ours_compressed + 1 end
        end
      end
      local ours = conn:deflate_stats()
      -- the peer inflated exactly what we deflated, and the other way
      -- round; it compresses every message (threshold 0, or always)
      assert.are.same(mirrored(ours, ours_compressed, sent),
        their_counters(conn))
      assert_compressed(ours)
      close_clean(conn, path)
    end)

    it("round-trips fragmented compressed messages both ways", function()
      local conn, path = open()
      -- ours: compressed, then cut into frames of at most `fragment` bytes
      echo(conn, "json", 65536, { fragment = 4096 })
      echo(conn, "text", MiB, { fragment = 65536 })
      echo(conn, "binary", 65536, { fragment = 1000 })
      -- theirs: a compressed message in N frames
      for _, c in ipairs({ { "json", 65536, 16 }, { "utf8", 1000, 7 },
          { "binary", 65536, 16 }, { "json", 200, 3 } }) do
        assert.is_true(conn:send(("cmd:fragment %s %d %d"):format(c[1], c[2],
          c[3]), "text", { compress = false }))
        local expected = peers.payload(c[1], c[2])
        local data, got = conn:receive(10)
        assert_payload(expected, wire_kind(c[1]), data, got)
      end
      local ours = conn:deflate_stats()
      assert.are.same(mirrored(ours, 3, 7), their_counters(conn))
      assert_compressed(ours)
      close_clean(conn, path)
    end)

    if cfg.big then
      it("round-trips a 16 MiB JSON and a 16 MiB binary message, compressed",
          function()
        local conn, path = open()
        echo(conn, "json", BIG)
        echo(conn, "binary", BIG)
        local ours = conn:deflate_stats()
        assert.are.same({ tx_raw = 2 * BIG, rx_raw = 2 * BIG },
          { tx_raw = ours.tx_raw, rx_raw = ours.rx_raw })
        assert.are.same(mirrored(ours, 2, 2), their_counters(conn))
        assert_compressed(ours)
        close_clean(conn, path)
      end)
    end

    if cfg.impl == "node" then
      it("sends short messages plain, and compresses when told to", function()
        local conn, path = open()
        echo(conn, "json", 1000, { compress = false }) -- plain, long
        echo(conn, "text", 10, { compress = true })    -- deflated, short
        echo(conn, "text", THRESHOLD - 1)               -- plain: threshold
        echo(conn, "text", THRESHOLD)                   -- deflated
        -- a plain message from the peer in between compressed ones
        assert.is_true(conn:send("cmd:plain json 5000", "text",
          { compress = false }))
        assert_payload(peers.payload("json", 5000), "text", conn:receive(10))
        local ours = conn:deflate_stats()
        assert.are.same({ tx_raw = 10 + THRESHOLD,
          rx_raw = 1000 + 10 + THRESHOLD - 1 + THRESHOLD },
          { tx_raw = ours.tx_raw, rx_raw = ours.rx_raw })
        assert.are.same(mirrored(ours, 2, 4), their_counters(conn))
        close_clean(conn, path)
      end)

      it("agrees on nothing and sends plain frames when we offer nothing",
          function()
        local conn, path = open({ deflate = false })
        assert.are.same({}, conn.extensions)
        assert.are.equal("-", server:wait_prefix("offer " .. path .. " ", 5))
        assert.are.equal("-", server:wait_prefix("answer " .. path .. " ", 5))
        echo(conn, "json", 65536)
        assert.are.same({ tx_raw = 0, tx_wire = 0, rx_wire = 0, rx_raw = 0 },
          conn:deflate_stats())
        assert.are.same({ tx_raw = 0, tx_wire = 0, rx_wire = 0, rx_raw = 0,
          tx_msgs = 0, rx_msgs = 0 }, their_counters(conn))
        close_clean(conn, path)
      end)
    end
  end)
end

------------------------------------------------------------------------
-- a client peer against our server

-- Our server (its `deflate`) and the client peer (its --deflate): what
-- the peer must see answered and what conn.extensions must say.
local CLIENTS = {
  { impl = "node", name = "our defaults (deflate = true)", deflate = true,
    peer = '{"threshold":0}', big = true,
    offer = OUR_OFFER,
    answer = "permessage-deflate; server_max_window_bits=12; "
      .. "client_max_window_bits=12",
    agreed = agreed(false, false, 12, 12) },
  { impl = "node", name = "server_no_context_takeover",
    deflate = { server_no_context_takeover = true }, peer = '{"threshold":0}',
    offer = OUR_OFFER,
    answer = "permessage-deflate; server_no_context_takeover; "
      .. "server_max_window_bits=12; client_max_window_bits=12",
    agreed = agreed(true, false, 12, 12) },
  { impl = "node", name = "client_no_context_takeover",
    deflate = { client_no_context_takeover = true }, peer = '{"threshold":0}',
    offer = OUR_OFFER,
    answer = "permessage-deflate; client_no_context_takeover; "
      .. "server_max_window_bits=12; client_max_window_bits=12",
    agreed = agreed(false, true, 12, 12) },
  { impl = "node", name = "windows 9 (server) and 8 (client)",
    deflate = { server_max_window_bits = 9, client_max_window_bits = 8 },
    peer = '{"threshold":0}',
    offer = OUR_OFFER,
    answer = "permessage-deflate; server_max_window_bits=9; "
      .. "client_max_window_bits=8",
    agreed = agreed(false, false, 9, 8) },
  { impl = "node", name = "a client asking for every parameter",
    deflate = true,
    peer = '{"threshold":0,"serverNoContextTakeover":true,'
      .. '"clientNoContextTakeover":true,"serverMaxWindowBits":10,'
      .. '"clientMaxWindowBits":11}',
    offer = "permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover; server_max_window_bits=10; "
      .. "client_max_window_bits=11",
    -- the client limited its own window to 11 in the offer; ours names
    -- it back (RFC 7692 7.1.2.2 allows either)
    answer = "permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover; server_max_window_bits=10; "
      .. "client_max_window_bits=11",
    agreed = agreed(true, true, 10, 11) },
  { impl = "node", name = "a client not offering client_max_window_bits",
    deflate = true, peer = '{"threshold":0,"clientMaxWindowBits":false}',
    offer = "permessage-deflate",
    answer = "permessage-deflate; server_max_window_bits=12",
    agreed = agreed(false, false, 12, 15) },
  { impl = "python", name = "its default compression", deflate = true,
    peer = "{}", big = true,
    offer = OUR_OFFER,
    answer = "permessage-deflate; server_max_window_bits=12; "
      .. "client_max_window_bits=12",
    agreed = agreed(false, false, 12, 12) },
  { impl = "python", name = "a client asking for no_context_takeover and "
      .. "window 10", deflate = true,
    peer = '{"server_no_context_takeover":true,'
      .. '"client_no_context_takeover":true,"server_max_window_bits":10}',
    offer = "permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover; server_max_window_bits=10; "
      .. "client_max_window_bits",
    answer = "permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover; server_max_window_bits=10; "
      .. "client_max_window_bits=12",
    agreed = agreed(true, true, 10, 12) },
}

-- Our server's handler: records per request path the offer it got,
-- conn.extensions, every message (as classify describes it), the
-- compression counters and the close event; echoes every message.
local function recording_handler(seen)
  return function(conn, request)
    local rec = { messages = {}, extensions = conn.extensions,
      offer = request.headers["sec-websocket-extensions"] or "-" }
    seen[request.path] = rec
    for data, kind in conn:messages() do
      rec.messages[#rec.messages + 1] = classify(data, kind)
      conn:send(data, kind)
    end
    rec.stats = conn:deflate_stats()
    rec.close = conn.close_event
  end
end

-- The steps a client peer runs, the result lines they must give, the
-- messages our server must record and how many messages each side
-- compresses (ours: those of at least THRESHOLD bytes).
local function client_plan(big, impl)
  local steps, lines, messages = { "ext", "params" }, {}, {}
  local ours, theirs = 0, 0
  local function add(step, kind, size, line_kind)
    steps[#steps + 1] = step
    lines[#lines + 1] = ("%s: %s %d ok"):format(step, line_kind, size)
    messages[#messages + 1] = classify(kind == "utf8"
      and peers.payload("utf8", size / #peers.UTF8_SAMPLE)
      or peers.payload(kind, size), line_kind)
    theirs = theirs + 1
    if size >= THRESHOLD then ours = ours + 1 end
  end
  for _, kind in ipairs(KINDS) do
    for _, size in ipairs(SIZES) do
      add(("echo %s %d"):format(kind, size), kind, size, wire_kind(kind))
    end
  end
  add("fragment json 65536 16", "json", 65536, "text")
  add("fragment binary 65536 16", "binary", 65536, "binary")
  -- websockets splits text by characters (node by bytes)
  add("fragment utf8 100 7", "utf8", 2300, "text")
  if big then
    add(("echo json %d"):format(BIG), "json", BIG, "text")
    add(("echo binary %d"):format(BIG), "binary", BIG, "binary")
  end
  if impl == "node" then
    -- uncompressed from the client: ours still compressed
    add("plain json 5000", "json", 5000, "text")
    theirs = theirs - 1
  end
  steps[#steps + 1] = "stats"
  return steps, lines, messages, ours, theirs
end

for _, cfg in ipairs(CLIENTS) do
  describe(("a %s client (deflate on) against our server with %s")
      :format(cfg.impl, cfg.name), function()
    local server, seen = nil, {}
    local path = "/" .. cfg.impl .. "-deflate"
    local lines, rec
    local _, expected_lines, expected_messages, ours_n, theirs_n =
      client_plan(cfg.big, cfg.impl)

    lazy_setup(function()
      server = assert(ws.listen({ host = "127.0.0.1", port = 0,
        deflate = cfg.deflate, handler = recording_handler(seen) }))
      local steps = client_plan(cfg.big, cfg.impl)
      lines = peers.run_client(cfg.impl, ("ws://127.0.0.1:%d%s")
        :format(server.port, path), steps,
        { deflate = cfg.peer, timeout = 90 })
      rec = peers.drive("our handler for " .. path, function()
        local r = seen[path]
        if r and r.close then return r end
      end, 10)
    end)

    lazy_teardown(function()
      if server then server:close(2) end
    end)

    it("is offered " .. cfg.offer, function()
      assert.are.equal(cfg.offer, rec.offer)
    end)

    it("answers " .. cfg.answer, function()
      assert.are.equal("ext " .. cfg.answer, lines[1])
      assert.are.same(cfg.agreed, rec.extensions)
    end)

    it("echoes every message byte for byte", function()
      local got = {}
      for i = 3, #lines - 1 do got[#got + 1] = lines[i] end
      assert.are.same(expected_lines, got)
      assert.are.same(expected_messages, rec.messages)
    end)

    it("compresses both ways: the client inflated what we deflated",
        function()
      local stats = assert(lines[#lines]:match("^stats (.*)$"), lines[#lines])
      assert.are.same(mirrored(rec.stats, ours_n, theirs_n),
        peers.counters(stats))
      assert_compressed(rec.stats)
    end)

    it("closes with a clean 1000 after the compressed traffic", function()
      assert.are.same({ code = 1000, clean = true, initiator = "remote" },
        ending(rec.close))
    end)
  end)
end

describe("a node client offering deflate to our server without deflate",
    function()
  it("gets no extension and plain frames", function()
    local seen = {}
    local server = assert(ws.listen({ host = "127.0.0.1", port = 0,
      handler = recording_handler(seen) }))
    finally(function() server:close(2) end)
    local lines = peers.run_client("node", ("ws://127.0.0.1:%d/plain")
      :format(server.port), { "ext", "params", "echo json 65536", "stats" },
      { deflate = '{"threshold":0}' })
    assert.are.same({ "ext -", "params -", "echo json 65536: text 65536 ok",
      "stats tx_raw=0 tx_wire=0 rx_wire=0 rx_raw=0 tx_msgs=0 rx_msgs=0" },
      lines)
    local rec = peers.drive("our handler", function()
      local r = seen["/plain"]
      if r and r.close then return r end
    end, 10)
    assert.are.equal("permessage-deflate; client_max_window_bits", rec.offer)
    assert.are.same({}, rec.extensions)
    assert.are.same({ tx_raw = 0, tx_wire = 0, rx_wire = 0, rx_raw = 0 },
      rec.stats)
  end)
end)

------------------------------------------------------------------------
-- our client against our server

-- Our client's and our server's `deflate`, and what both sides' conn.extensions
-- must say (nil: nothing agreed).
local OURS = {
  { name = "both defaults", client = true, server = true, big = true,
    agreed = agreed(false, false, 12, 12) },
  { name = "client_no_context_takeover asked by the server",
    client = true, server = { client_no_context_takeover = true },
    agreed = agreed(false, true, 12, 12) },
  { name = "server_no_context_takeover offered by the client",
    client = { server_no_context_takeover = true }, server = true,
    agreed = agreed(true, false, 12, 12) },
  { name = "windows 8 asked by the client", client = {
      server_max_window_bits = 8, client_max_window_bits = 8 },
    server = true, agreed = agreed(false, false, 8, 8) },
  { name = "windows 15 allowed by the server, no context takeover",
    client = { client_no_context_takeover = true,
      server_no_context_takeover = true },
    server = { server_max_window_bits = 15, client_max_window_bits = 15 },
    agreed = agreed(true, true, 15, 15) },
  { name = "level 9 and threshold 0 on both", client = { level = 9,
      threshold = 0 }, server = { level = 9, threshold = 0 },
    agreed = agreed(false, false, 12, 12), threshold = 0 },
  { name = "the server not accepting", client = true, server = false,
    agreed = {} },
  { name = "the client not offering", client = false, server = true,
    agreed = {} },
}

for _, cfg in ipairs(OURS) do
  describe("our client against our server, " .. cfg.name, function()
    local server, seen, count = nil, {}, 0
    local threshold = cfg.threshold or THRESHOLD
    local on = next(cfg.agreed) ~= nil

    lazy_setup(function()
      server = assert(ws.listen({ host = "127.0.0.1", port = 0,
        deflate = cfg.server, handler = recording_handler(seen) }))
    end)

    lazy_teardown(function()
      if server then server:close(2) end
    end)

    -- Run fn(conn) on a new connection, close it with 1000 and return
    -- what our server recorded for it.
    local function session(fn)
      count = count + 1
      local path = "/ours-" .. count
      local conn = assert(ws.connect(("ws://127.0.0.1:%d%s")
        :format(server.port, path), { deflate = cfg.client }))
      local ok, err = pcall(fn, conn)
      if not ok then
        conn:abort()
        error(err, 0)
      end
      local ev = conn:close(1000)
      assert.are.same({ code = 1000, clean = true, initiator = "local" },
        ending(ev))
      return peers.drive("our handler for " .. path, function()
        local r = seen[path]
        if r and r.close then return r end
      end, 10), conn
    end

    local function echo(conn, kind, size, opts)
      local payload = peers.payload(kind, size)
      assert.is_true(conn:send(payload, wire_kind(kind), opts))
      local data, got = conn:receive(30)
      assert_payload(payload, wire_kind(kind), data, got)
    end

    it("agrees on the same parameters on both sides", function()
      local rec, conn = session(function() end)
      assert.are.same(cfg.agreed, conn.extensions)
      assert.are.same(cfg.agreed, rec.extensions)
      if cfg.client == false then
        assert.are.equal("-", rec.offer)
      else
        assert.are.equal("permessage-deflate", rec.offer:match("^[%w-]+"))
      end
    end)

    it("round-trips messages of 0 B to 1 MiB, single frames and "
        .. "fragmented, the server inflating what the client deflated",
        function()
      local rec, conn = session(function(conn)
        for _, kind in ipairs(KINDS) do
          for _, size in ipairs(SIZES) do
            echo(conn, kind, size)
            echo(conn, kind, size, { fragment = 1000 })
          end
        end
        echo(conn, "text", 10, { compress = true })
        echo(conn, "json", 5000, { compress = false })
      end)
      local client = conn:deflate_stats()
      -- the server's rx is the client's tx and the other way round
      assert.are.same({ tx_raw = client.rx_raw, tx_wire = client.rx_wire,
        rx_wire = client.tx_wire, rx_raw = client.tx_raw }, rec.stats)
      if on then
        local raw = 0
        for _, size in ipairs(SIZES) do
          if size >= threshold then raw = raw + 2 * #KINDS * size end
        end
        -- the client forced the 10 bytes and kept the 5000 plain; the
        -- server's echoes go by its threshold
        assert.are.same({ tx_raw = raw + 10,
            rx_raw = raw + 5000 + (threshold <= 10 and 10 or 0) },
          { tx_raw = client.tx_raw, rx_raw = client.rx_raw })
        assert_compressed(client)
      else
        assert.are.same({ tx_raw = 0, tx_wire = 0, rx_wire = 0, rx_raw = 0 },
          client)
      end
    end)

    if cfg.big then
      it("round-trips 16 MiB JSON and binary messages, single and "
          .. "fragmented", function()
        local rec, conn = session(function(conn)
          echo(conn, "json", BIG)
          echo(conn, "binary", BIG, { fragment = MiB })
        end)
        local client = conn:deflate_stats()
        assert.are.same({ tx_raw = 2 * BIG, rx_raw = 2 * BIG },
          { tx_raw = client.tx_raw, rx_raw = client.rx_raw })
        assert.are.same(copy(rec.stats), { tx_raw = client.rx_raw,
          tx_wire = client.rx_wire, rx_wire = client.tx_wire,
          rx_raw = client.tx_raw })
        assert_compressed(client)
      end)
    end
  end)
end
