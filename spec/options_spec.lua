-- The options of every entry point: doc/options.md is what the schemas
-- generate, every documented option is accepted and no other, and bad
-- values raise at the caller's line with messages that name the function
-- and the option.
local ws = require "ws"
local reconnect = require "ws.reconnect"
local protocol = require "ws.protocol"
local options = require "ws.options"

local URL = "ws://127.0.0.1:1/"
local SRC = debug.getinfo(1, "S").short_src

-- ws.resty outside nginx: a stand-in `ngx` is enough to load it, since
-- every option is checked before nginx is asked for anything.
local function load_resty()
  local saved_ngx = rawget(_G, "ngx")
  local saved_sem = package.preload["ngx.semaphore"]
  rawset(_G, "ngx", { socket = {}, ERR = 1, log = function() end })
  package.preload["ngx.semaphore"] = function() return {} end
  package.loaded["ws.resty"] = nil
  package.loaded["ws.transport.cosocket"] = nil
  local resty = require "ws.resty"
  package.loaded["ws.resty"] = nil
  package.loaded["ws.transport.cosocket"] = nil
  package.preload["ngx.semaphore"] = saved_sem
  rawset(_G, "ngx", saved_ngx)
  return resty
end
local resty = load_resty()

local function handler() end

-- How each documented entry point is called, and the values its required
-- options need (so that a probe of another option gets that far).
local CALLS = {
  ["ws.connect(url, opts)"] = { function(o) ws.connect(URL, o) end },
  ["ws.client(url, opts)"] = { function(o) ws.client(URL, o) end,
    sub = { queue = { max = 1 } } },
  ["ws.listen(opts)"] = { function(o) ws.listen(o) end,
    base = { port = 0, handler = handler },
    sub = { tls = { cert_file = "c.pem", key_file = "c.key" } } },
  ["ws.resty.upgrade(opts)"] = { function(o) resty.upgrade(o) end },
  ["ws.resty.serve(opts)"] = { function(o) resty.serve(o) end,
    base = { handler = handler } },
  ["ws.resty.connect(url, opts)"] = { function(o) resty.connect(URL, o) end },
  ["ws.protocol.new(opts)"] = { function(o) protocol.new(o) end },
  ["send(data, kind, opts)"] = {
    function(o) protocol.new():send("x", "text", o) end },
  ["server:broadcast(data, kind, opts)"] = { function(o)
      local srv = assert(ws.listen{ port = 0, handler = handler })
      local ok, err = pcall(srv.broadcast, srv, "x", "text", o)
      srv:close()
      if not ok then error(err, 0) end
    end },
  ["send_part(data, kind, fin, opts)"] = {
    function(o) options.send_part_opts(o, 1) end },
  ["receive(opts)"] = { function(o) options.receive_opts(o, 1) end },
  ["ws.reconnect.fixed(delay, opts)"] = {
    function(o) reconnect.fixed(1, o) end },
  ["ws.reconnect.exponential(opts)"] = {
    function(o) reconnect.exponential(o) end },
  ["ws.reconnect.rfc6455(opts)"] = { function(o) reconnect.rfc6455(o) end },
  ["ws.reconnect.limit(policy, opts)"] = {
    function(o) reconnect.limit(reconnect.never(), o) end },
  ["ws.reconnect.by_class(policies)"] = {
    function(o) reconnect.by_class(o) end },
}
local HEARTBEAT = { interval = 1, timeout = 1 }

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- doc/options.md as sections: title -> { names = set, also = { titles } }
local function parse_doc(text)
  local sections, order, cur = {}, {}, nil
  local anchors = {}
  for line in text:gmatch("[^\n]*") do
    local title = line:match("^## (.+)$")
    if title then
      cur = { names = {}, also = {} }
      sections[title] = cur
      order[#order + 1] = title
      anchors[(title:lower():gsub("[^%w%- _]", ""):gsub(" ", "-"))] = title
    elseif cur then
      local name = line:match("^| `([%w_%.]+)` |")
      if name then cur.names[name] = true end
      if line:match("^Also:") then
        for a in line:gmatch("%]%(#([^)]+)%)") do
          cur.also[#cur.also + 1] = a
        end
      end
    end
  end
  -- the options a section takes, with what it takes through "Also:"
  local function all(title, out)
    local sec = sections[title]
    for n in pairs(sec.names) do out[n] = true end
    for _, a in ipairs(sec.also) do all(assert(anchors[a], a), out) end
    return out
  end
  local result = {}
  for _, title in ipairs(order) do result[title] = all(title, {}) end
  return result, order
end

-- The message of the error f raises.
local function raised(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "no error")
  return err
end

local function copy(t)
  local o = {}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

describe("doc/options.md", function()
  local doc = read("doc/options.md")
  local sections, order = parse_doc(doc)

  it("is what .ci/options_doc.lua generates from the schemas", function()
    assert.are.equal(dofile(".ci/options_doc.lua"), doc)
  end)

  it("has a section for every entry point", function()
    for _, title in ipairs(order) do
      assert.is_truthy(CALLS[title] or title == "Connection options", title)
    end
    for title in pairs(CALLS) do
      assert.is_truthy(sections[title], title .. " is not documented")
    end
  end)

  -- Every option name documented anywhere, tried on every entry point
  -- with a value no option takes (a coroutine): a documented option must
  -- be refused for its value, any other name as unknown.
  local every = {}
  for _, names in pairs(sections) do
    for n in pairs(names) do every[n] = true end
  end
  -- and every name the schemas know (what the code accepts somewhere)
  local function names_of(fields, prefix)
    for _, f in ipairs(fields) do
      every[prefix .. f.name] = true
      if f.type.fields then names_of(f.type.fields, prefix .. f.name .. ".") end
    end
  end
  for _, sec in ipairs(require("ws.options").DOC) do
    names_of(sec.schema and sec.schema.fields or sec.fields, "")
  end
  for extra in ("cafile verfiy tiemout queue_max hearbeat tls.cafile "
      .. "tls.verfiy heartbeat.intervall queue.size"):gmatch("%S+") do
    every[extra] = true
  end
  local odd = coroutine.create(function() end)

  for title, call in pairs(CALLS) do
    it("matches what " .. title .. " accepts", function()
      local documented = sections[title]
      for name in pairs(every) do
        local parent, child = name:match("^([^.]+)%.(.+)$")
        local o = copy(call.base)
        if parent then
          if documented[parent] then
            local sub = copy((call.sub or {})[parent]
              or (parent == "heartbeat" and HEARTBEAT) or {})
            sub[child] = odd
            o[parent] = sub
          end
        else
          o[name] = odd
        end
        if not parent or documented[parent] then
          local err = raised(call[1], o)
          if documented[name] then
            assert.is_truthy(err:find("'" .. name .. "'", 1, true)
              and err:find("expected, got thread)", 1, true),
              title .. " refuses documented option " .. name .. ": " .. err)
          else
            assert.is_truthy(err:find("unknown %a+ '" .. name:gsub("%p", "%%%0")
              .. "'"), title .. " accepts undocumented option " .. name
              .. ": " .. err)
          end
        end
      end
    end)
  end
end)

-- f must raise `msg` at the line f is written on (a one-line function).
local function raises_here(msg, f)
  local line = debug.getinfo(f, "S").linedefined
  assert.are.equal(SRC .. ":" .. line .. ": " .. msg, raised(f))
end

describe("option errors", function()
  describe("ws.connect", function()
    local pre = "bad argument #2 to 'connect' ("
    it("refuses a negative max_buffered", function()
      raises_here(pre .. "option 'max_buffered': positive integer expected, got -5)",
        function() ws.connect(URL, { max_buffered = -5 }) end)
    end)
    it("refuses a string where a list of protocols is expected", function()
      raises_here(pre .. "option 'protocols': list of strings expected, got \"chat\")",
        function() ws.connect(URL, { protocols = "chat" }) end)
    end)
    it("refuses a list of protocols with a number in it", function()
      raises_here(pre .. "option 'protocols': list of strings expected, got table)",
        function() ws.connect(URL, { protocols = { "chat", 2 } }) end)
    end)
    it("refuses a timeout that is not a number", function()
      raises_here(pre .. "option 'close_timeout': positive number expected, got \"x\")",
        function() ws.connect(URL, { close_timeout = "x" }) end)
    end)
    it("refuses a NaN timeout", function()
      raises_here(pre .. "option 'timeout': positive number expected, got NaN)",
        function() ws.connect(URL, { timeout = 0 / 0 }) end)
    end)
    it("refuses an infinite linger", function()
      raises_here(pre .. "option 'linger': positive number expected, got inf)",
        function() ws.connect(URL, { linger = math.huge }) end)
    end)
    it("refuses a zero read size limit", function()
      raises_here(pre .. "option 'inbox_max_bytes': positive integer expected, got 0)",
        function() ws.connect(URL, { inbox_max_bytes = 0 }) end)
    end)
    it("refuses a fractional count", function()
      raises_here(pre .. "option 'max_fragments': positive integer expected, got 1.5)",
        function() ws.connect(URL, { max_fragments = 1.5 }) end)
    end)
    it("refuses an unknown tls key even for ws://", function()
      raises_here(pre .. "unknown option 'tls.cafile')",
        function() ws.connect(URL, { tls = { cafile = "ca.pem" } }) end)
    end)
    it("refuses a tls value of the wrong type", function()
      raises_here(pre .. "option 'tls.verify': boolean expected, got string)",
        function() ws.connect(URL, { tls = { verify = "no" } }) end)
    end)
    it("refuses a TLS version it does not know", function()
      raises_here(pre .. "option 'tls.min_version': \"1.2\" or \"1.3\" expected, got \"1.1\")",
        function() ws.connect(URL, { tls = { min_version = "1.1" } }) end)
    end)
    it("refuses an unknown address family", function()
      raises_here(pre .. "option 'family': \"inet\" or \"inet6\" expected, got \"ipx\")",
        function() ws.connect(URL, { family = "ipx" }) end)
    end)
    it("refuses an unknown heartbeat key", function()
      raises_here(pre .. "unknown option 'heartbeat.every')",
        function() ws.connect(URL, { heartbeat = { interval = 1, timeout = 1, every = 2 } }) end)
    end)
    it("refuses a heartbeat without its timeout", function()
      raises_here(pre .. "option 'heartbeat.timeout': positive number expected, got nil)",
        function() ws.connect(URL, { heartbeat = { interval = 1 } }) end)
    end)
    it("refuses a heartbeat that is not a table", function()
      raises_here(pre .. "option 'heartbeat': table expected, got boolean)",
        function() ws.connect(URL, { heartbeat = true }) end)
    end)
    it("refuses a header whose value is a table", function()
      raises_here(pre .. "option 'headers': table of name = value strings expected, got table)",
        function() ws.connect(URL, { headers = { X = {} } }) end)
    end)
    it("refuses options that are not a table", function()
      raises_here(pre .. "table expected, got string)",
        function() ws.connect(URL, "fast") end)
    end)
  end)

  describe("ws.client", function()
    local pre = "bad argument #2 to 'client' ("
    it("refuses a tls typo at the call, naming client", function()
      raises_here(pre .. "unknown option 'tls.cafile')",
        function() ws.client("wss://127.0.0.1:1/", { tls = { cafile = "ca.pem" } }) end)
    end)
    it("refuses an unknown address family at the call", function()
      raises_here(pre .. "option 'family': \"inet\" or \"inet6\" expected, got \"ipx\")",
        function() ws.client(URL, { family = "ipx" }) end)
    end)
    it("refuses ws.connect's options with bad values, naming client", function()
      raises_here(pre .. "option 'max_buffered': positive integer expected, got -5)",
        function() ws.client(URL, { max_buffered = -5 }) end)
    end)
    it("refuses a policy that is not callable", function()
      raises_here(pre .. "option 'reconnect': function expected, got number)",
        function() ws.client(URL, { reconnect = 5 }) end)
    end)
    it("refuses a negative queue size", function()
      raises_here(pre .. "option 'queue.max': integer >= 0 expected, got -1)",
        function() ws.client(URL, { queue = { max = -1 } }) end)
    end)
    it("refuses an unknown queue key", function()
      raises_here(pre .. "unknown option 'queue.size')",
        function() ws.client(URL, { queue = { max = 1, size = 2 } }) end)
    end)
    it("refuses a negative stable_after", function()
      raises_here(pre .. "option 'stable_after': finite number >= 0 expected, got -1)",
        function() ws.client(URL, { stable_after = -1 }) end)
    end)
    it("refuses a retry_initial that is not a boolean", function()
      raises_here(pre .. "option 'retry_initial': boolean expected, got string)",
        function() ws.client(URL, { retry_initial = "no" }) end)
    end)
  end)

  describe("ws.listen", function()
    local pre = "bad argument #1 to 'listen' ("
    it("refuses ws.connect's client options", function()
      for _, name in ipairs({ "timeout", "origin", "family" }) do
        assert.are.equal(pre .. "unknown option '" .. name .. "')",
          raised(ws.listen, { port = 0, handler = handler, [name] = "x" }))
      end
    end)
    it("requires a handler", function()
      raises_here(pre .. "option 'handler': function expected, got nil)",
        function() ws.listen{ port = 0 } end)
    end)
    it("refuses a port out of range", function()
      raises_here(pre .. "option 'port': integer from 0 to 65535 expected, got 70000)",
        function() ws.listen{ port = 70000, handler = handler } end)
    end)
    it("refuses a zero backlog", function()
      raises_here(pre .. "option 'backlog': integer from 1 to 65535 expected, got 0)",
        function() ws.listen{ port = 0, backlog = 0, handler = handler } end)
    end)
    it("requires the key with the certificate", function()
      raises_here(pre .. "option 'tls.key_file': string expected, got nil)",
        function() ws.listen{ port = 0, handler = handler, tls = { cert_file = "c" } } end)
    end)
    it("refuses a client's tls key", function()
      raises_here(pre .. "unknown option 'tls.verify')",
        function() ws.listen{ port = 0, handler = handler, tls = { cert_file = "c", key_file = "k", verify = false } } end)
    end)
    it("refuses a negative handshake_timeout", function()
      raises_here(pre .. "option 'handshake_timeout': positive number expected, got -1)",
        function() ws.listen{ port = 0, handler = handler, handshake_timeout = -1 } end)
    end)
    it("refuses options that are not a table", function()
      raises_here(pre .. "table expected, got nil)", function() ws.listen() end)
    end)
  end)

  describe("ws.resty", function()
    it("refuses an unknown upgrade option", function()
      raises_here("bad argument #1 to 'upgrade' (unknown option 'timeout')",
        function() resty.upgrade{ timeout = 1 } end)
    end)
    it("refuses a serve without a handler", function()
      raises_here("bad argument #1 to 'serve' (option 'handler': function expected, got nil)",
        function() resty.serve{} end)
    end)
    it("refuses a negative read_timeout", function()
      raises_here("bad argument #1 to 'serve' (option 'read_timeout': positive number expected, got -1)",
        function() resty.serve{ handler = handler, read_timeout = -1 } end)
    end)
    it("refuses the loop's tls keys on the cosocket client", function()
      raises_here("bad argument #2 to 'connect' (unknown option 'tls.ca_file')",
        function() resty.connect(URL, { tls = { ca_file = "ca.pem" } }) end)
    end)
    it("refuses a string where a list of protocols is expected", function()
      raises_here("bad argument #2 to 'connect' (option 'protocols': list of strings expected, got \"chat\")",
        function() resty.connect(URL, { protocols = "chat" }) end)
    end)
  end)

  describe("ws.protocol.new", function()
    local pre = "bad argument #1 to 'new' ("
    it("refuses an unknown role", function()
      raises_here(pre .. "option 'role': \"client\" or \"server\" expected, got \"peer\")",
        function() protocol.new{ role = "peer" } end)
    end)
    it("refuses a zero message size", function()
      raises_here(pre .. "option 'max_message_size': positive integer expected, got 0)",
        function() protocol.new{ max_message_size = 0 } end)
    end)
    it("refuses auto_pong that is not a boolean", function()
      raises_here(pre .. "option 'auto_pong': boolean expected, got string)",
        function() protocol.new{ auto_pong = "yes" } end)
    end)
    it("refuses a connection option it does not take", function()
      raises_here(pre .. "unknown option 'close_timeout')",
        function() protocol.new{ close_timeout = 1 } end)
    end)
  end)

  describe("ws.reconnect", function()
    it("refuses a NaN initial delay", function()
      raises_here("bad argument #1 to 'exponential' (option 'initial': finite number > 0 expected, got NaN)",
        function() reconnect.exponential{ initial = 0 / 0 } end)
    end)
    it("refuses an rfc6455 max below its initial window", function()
      raises_here("bad argument #1 to 'rfc6455' (option 'max': finite number >= 5 expected, got 4)",
        function() reconnect.rfc6455{ max = 4 } end)
    end)
    it("refuses a fractional max_attempts", function()
      raises_here("bad argument #2 to 'limit' (option 'max_attempts': integer >= 0 expected, got 0.5)",
        function() reconnect.limit(reconnect.never(), { max_attempts = 0.5 }) end)
    end)
    it("refuses a class it does not know", function()
      raises_here("bad argument #1 to 'by_class' (unknown class 'fatl')",
        function() reconnect.by_class{ fatl = reconnect.never() } end)
    end)
  end)
end)

describe("accepted options", function()
  it("builds an engine with every ws.protocol.new option", function()
    local p = protocol.new{ role = "server", max_message_size = 10,
      max_frame_size = 5, max_fragments = 2, auto_pong = false }
    assert.are.equal("server", p.role)
  end)

  it("builds every policy with all of its options", function()
    local random = function() return 0.5 end
    local p = reconnect.limit(reconnect.by_class{
      retry = reconnect.exponential{ initial = 1, max = 8, factor = 2,
        jitter = "none" },
      restart = reconnect.rfc6455{ initial = 2, max = 4 },
    }, { max_attempts = 3, max_elapsed = 100 })
    assert.are.equal(4, p({ code = 1006, initiator = "transport" }, 3,
      { class = "retry", elapsed = 0, random = random }))
  end)
end)
