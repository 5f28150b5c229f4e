-- permessage-deflate in ws.resty inside a real nginx (LuaJIT, cosockets):
-- its server locations (spec/interop/resty_deflate_app.lua) against our
-- client and a Node `ws` client, and its client (inside nginx) against a
-- Node `ws` server and our own server, all with compression on. Checks
-- what was agreed, payloads byte for byte, that the other end inflated
-- exactly what one end deflated, and the clean 1000 close. Modelled on
-- spec/resty_spec.lua; every wait is bounded.
local ws = require "ws"
local nginx = require "support.nginx"
local peers = require "interop.peers"
local drive = require "support.drive"

local MiB = 1024 * 1024
local SIZES = { 0, 125, 126, 65536, MiB, 16 * MiB }
local THRESHOLD = 128

local BODY = [[
  location /deflate/ {
    content_by_lua_block { require("interop.resty_deflate_app").serve(true) }
  }
  location /nct/ {
    content_by_lua_block {
      require("interop.resty_deflate_app").serve{
        server_no_context_takeover = true, client_no_context_takeover = true,
        server_max_window_bits = 10, client_max_window_bits = 9 }
    }
  }
  location /plain/ {
    content_by_lua_block { require("interop.resty_deflate_app").serve(false) }
  }
  location = /seen {
    content_by_lua_block { ngx.print(ngx.shared.seen:get(ngx.req.get_uri_args().path) or "") }
  }
  location = /client {
    content_by_lua_block { require("interop.resty_deflate_app").client() }
  }
]]

local function lines_of(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

local function urlencode(s)
  return (s:gsub("[^%w%-._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

local function extline(snct, cnct, smwb, cmwb)
  return ("ext snct=%s cnct=%s smwb=%d cmwb=%d"):format(tostring(snct),
    tostring(cnct), smwb, cmwb)
end

local function statline(s)
  return ("stats tx_raw=%d tx_wire=%d rx_wire=%d rx_raw=%d"):format(
    s.tx_raw, s.tx_wire, s.rx_wire, s.rx_raw)
end

-- The other end's counters: their rx is our tx and the other way round.
local function mirror(s)
  return { tx_raw = s.rx_raw, tx_wire = s.rx_wire, rx_wire = s.tx_wire,
    rx_raw = s.tx_raw }
end

-- At least halved both ways; with `small` (2^9-byte windows, where the
-- binary payload of period 256 cannot shrink) just smaller.
local function compressed(s, small)
  local f = small and 1 or 2
  return s.tx_raw > 0 and s.tx_wire * f < s.tx_raw and s.rx_raw > 0
    and s.rx_wire * f < s.rx_raw
end

local function parse_stats(line)
  local t = peers.counters(assert(line:match("^stats (.*)$"), line))
  return { tx_raw = t.tx_raw, tx_wire = t.tx_wire, rx_wire = t.rx_wire,
    rx_raw = t.rx_raw }
end

if not nginx.available() then
  error("nginx with lua-nginx-module is not installed: run .ci/deps.sh nginx")
end

describe("ws.resty with permessage-deflate in nginx", function()
  local server
  local count = 0

  lazy_setup(function()
    server = nginx.start(BODY, { http = "lua_shared_dict seen 4m;" })
  end)

  lazy_teardown(function()
    local log = server and server:error_log() or ""
    if server then server:stop() end
    assert.is_nil(log:match("[^\n]*runtime error[^\n]*"))
    assert.is_nil(log:match("[^\n]*%[alert%][^\n]*"))
    assert.is_nil(log:match("[^\n]*%[crit%][^\n]*"))
  end)

  local function fresh(prefix)
    count = count + 1
    return prefix .. "t" .. count
  end

  -- What the location recorded for a path, once it recorded the close.
  local function seen(path)
    local text
    drive.until_true(function()
      text = server:get("/seen?path=" .. urlencode(path))
      return text:find("\nclose ", 1, true) ~= nil
    end, 10)
    return lines_of(text)
  end

  for _, loc in ipairs({
    { prefix = "/deflate/", ext = extline(false, false, 12, 12) },
    { prefix = "/nct/", ext = extline(true, true, 10, 9), small = true },
    { prefix = "/plain/", ext = "ext -" },
  }) do
    it(("serves our client on %s: %s, 0 B to 16 MiB echoed, the location "
        .. "inflating what we deflated"):format(loc.prefix, loc.ext), function()
      local path = fresh(loc.prefix)
      local conn = assert(ws.connect(server:url(path),
        { timeout = 10, max_message_size = 64 * MiB }))
      local expected = { "offer permessage-deflate; client_max_window_bits",
        loc.ext }
      local p = conn.extensions["permessage-deflate"]
      assert.are.equal(loc.ext, p and extline(p.server_no_context_takeover,
        p.client_no_context_takeover, p.server_max_window_bits,
        p.client_max_window_bits) or "ext -")
      for _, size in ipairs(SIZES) do
        for _, kind in ipairs({ "json", "binary" }) do
          local msg = peers.payload(kind, size)
          local wk = kind == "json" and "text" or "binary"
          assert.is_true(conn:send(msg, wk, { fragment = size >= MiB
            and 65536 or nil }))
          local data, got = conn:receive(30)
          assert.are.equal(wk, got)
          assert.is_true(data == msg, "payload differs")
          expected[#expected + 1] = wk .. " " .. size
        end
      end
      local ours = conn:deflate_stats()
      local ev = conn:close(1000, "bye")
      assert.are.same({ 1000, true }, { ev.code, ev.clean })
      expected[#expected + 1] = statline(mirror(ours))
      expected[#expected + 1] = "close 1000 true"
      assert.are.same(expected, seen(path))
      if loc.ext == "ext -" then
        assert.are.same({ tx_raw = 0, tx_wire = 0, rx_wire = 0, rx_raw = 0 },
          ours)
      else
        assert.is_true(compressed(ours, loc.small), statline(ours))
      end
    end)
  end

  it("serves a Node ws client (perMessageDeflate, threshold 0): "
      .. "agreed, echoed, inflated what it deflated", function()
    local path = fresh("/deflate/")
    local steps = { "ext" }
    local want = { "ext permessage-deflate; server_max_window_bits=12; "
      .. "client_max_window_bits=12" }
    for _, size in ipairs(SIZES) do
      steps[#steps + 1] = ("echo json %d"):format(size)
      want[#want + 1] = ("echo json %d: text %d ok"):format(size, size)
    end
    steps[#steps + 1] = "fragment binary 65536 16"
    want[#want + 1] = "fragment binary 65536 16: binary 65536 ok"
    steps[#steps + 1] = "stats"
    local lines = peers.run_client("node", server:url(path), steps,
      { deflate = '{"threshold":0}', timeout = 90 })
    local theirs = parse_stats(table.remove(lines))
    assert.are.same(want, lines)
    local rec = seen(path)
    assert.are.same("ext snct=false cnct=false smwb=12 cmwb=12", rec[2])
    assert.are.same(statline(mirror(theirs)), rec[#rec - 1])
    assert.are.equal("close 1000 true", rec[#rec])
    assert.is_true(compressed(theirs), statline(theirs))
  end)

  -- The resty client's lines up to its stats, for a target that agrees
  -- on `ext`.
  local function client_lines(ext)
    local t = { ext }
    for _, size in ipairs({ 0, 125, 126, 65536, MiB, 16 * MiB }) do
      for _, kind in ipairs({ "text", "binary" }) do
        for _, frag in ipairs({ "", " fragmented" }) do
          t[#t + 1] = ("echo %s %d%s: %s ok"):format(kind, size, frag, kind)
        end
      end
    end
    return t
  end

  local function run_client(url, nct)
    local text = server:get("/client?url=" .. urlencode(url)
      .. (nct and "&nct=1" or ""), { timeout = 120 })
    local lines = lines_of(text)
    assert(#lines > 2, "the client location said: " .. text .. "\n"
      .. server:error_log():sub(-3000))
    local close = table.remove(lines)
    local stats = parse_stats(table.remove(lines) or "stats -")
    return lines, stats, close
  end

  it("connects from nginx to a Node ws server with perMessageDeflate",
      function()
    local node = peers.server("node", { deflate = '{"threshold":0}' })
    finally(function() node:stop() end)
    local lines, stats, close = run_client(node.url("/from-resty"), true)
    assert.are.same(client_lines(extline(true, true, 15, 15)), lines)
    assert.are.equal("close 1000 true", close)
    assert.is_true(compressed(stats), statline(stats))
    assert.are.equal("permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover; client_max_window_bits",
      node:wait_prefix("offer /from-resty ", 5))
    local theirs = parse_stats("stats "
      .. node:wait_prefix("stats /from-resty ", 10))
    assert.are.same(mirror(stats), theirs)
  end)

  it("connects from nginx to our server with deflate", function()
    local got = {}
    local ours = assert(ws.listen({ host = "127.0.0.1", port = 0,
      deflate = true, max_message_size = 64 * MiB,
      handler = function(conn)
        for data, kind in conn:messages() do conn:send(data, kind) end
        got.stats = conn:deflate_stats()
        got.close = conn.close_event
      end }))
    finally(function() ours:close(2) end)
    local lines, stats, close = run_client(("ws://127.0.0.1:%d/from-resty")
      :format(ours.port))
    assert.are.same(client_lines(extline(false, false, 12, 12)), lines)
    assert.are.equal("close 1000 true", close)
    drive.until_true(function() return got.close ~= nil end, 10)
    assert.are.same(mirror(stats), got.stats)
    assert.is_true(compressed(stats), statline(stats))
    -- below the threshold nothing was compressed: 0, 125 and 126 bytes
    local raw = 0
    for _, size in ipairs({ 0, 125, 126, 65536, MiB, 16 * MiB }) do
      if size >= THRESHOLD then raw = raw + 4 * size end
    end
    assert.are.same({ raw, raw }, { stats.tx_raw, stats.rx_raw })
  end)
end)
