--- The `lua-ws` command-line tool: `connect` (an interactive or scripted
-- client), `listen` (a server for testing clients) and `explain` (what a
-- close code means). bin/lua-ws only finds the modules and calls
-- `cli.main(arg)`; everything it does is here, so that the specs can test
-- the parts (argument parsing, exit statuses, JSON) without a process.
--
-- The exit status of `connect` is derived from the close event (the table
-- is `cli.STATUS`, documented in doc/cli.md), so that a shell script can
-- assert how a server closed.
-- @module ws.cli
local ws = require "ws"
local core = require "ws.core"
local codes = require "ws.codes"

local type, tostring, tonumber, ipairs, pairs, pcall =
  type, tostring, tonumber, ipairs, pairs, pcall
local concat, format, floor = table.concat, string.format, math.floor

local cli = {}

cli.VERSION = ws._VERSION

------------------------------------------------------------------ JSON

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b",
  ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
  -- text we print is UTF-8 (messages and reasons are validated); other
  -- strings (error messages) have their bytes above 0x7F read as Latin-1
  -- so that the output stays valid JSON
  local e = s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or format("\\u%04x", c:byte())
  end)
  if not core.utf8_valid(s) then
    e = e:gsub("[\128-\255]", function(c)
      return format("\\u%04x", c:byte())
    end)
  end
  return '"' .. e .. '"'
end

local function json_value(v)
  local t = type(v)
  if v == nil then return "null"
  elseif t == "boolean" then return tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v == floor(v) and v > -2^53 and v < 2^53 then
      return format("%d", v)
    end
    return format("%.6g", v)
  elseif t == "string" then return json_string(v)
  end
  error("cannot encode a " .. t .. " as JSON", 2)
end

--- One JSON object on one line, its members in the order of `keys`
-- (values from `t`). Strings, numbers, booleans and nil only: the events
-- have no nested tables.
-- @tparam table keys member names, in order
-- @tparam table t the values
-- @tparam[opt] boolean nulls write nil values as null (else leave the
--   member out)
-- @treturn string
function cli.json(keys, t, nulls)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if v ~= nil or nulls then
      out[#out + 1] = json_string(k) .. ":" .. json_value(v)
    end
  end
  return "{" .. concat(out, ",") .. "}"
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- Base64 (RFC 4648, with padding), for binary messages in JSON.
function cli.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {}
    for j = 4, 1, -1 do
      q[j] = n % 64 + 1
      n = floor(n / 64)
    end
    out[#out + 1] = B64:sub(q[1], q[1]) .. B64:sub(q[2], q[2])
      .. (b and B64:sub(q[3], q[3]) or "=") .. (c and B64:sub(q[4], q[4]) or "=")
  end
  return concat(out)
end

------------------------------------------------------------ exit status

--- The exit statuses: { status, word, when }, in order. doc/cli.md has
-- the same table; spec/cli_spec.lua tests every row.
cli.STATUS = {
  { 0, "normal", "closed cleanly with 1000 normal or 1001 going_away" },
  { 1, "failure", "lua-ws itself failed: a file it cannot read, a port it "
    .. "cannot listen on, an unexpected error" },
  { 2, "usage", "bad command line: unknown command or option, missing or "
    .. "bad value" },
  { 3, "connect", "could not connect: DNS, TCP refused or reset, a timeout "
    .. "before the WebSocket opened, a proxy that refused (1006)" },
  { 4, "handshake", "the server refused the opening handshake (an HTTP "
    .. "status other than 101, printed as http_status) or answered it "
    .. "wrongly (1006)" },
  { 5, "tls", "TLS failure: certificate not trusted, wrong host name, no "
    .. "common version (1015)" },
  { 6, "abnormal", "the open connection ended without a close frame: TCP "
    .. "dropped, close or heartbeat timeout (1006)" },
  { 7, "protocol", "a broken protocol or limit: 1002 protocol_error, 1003 "
    .. "unsupported_data, 1007 invalid_payload, 1009 message_too_big, 1010 "
    .. "mandatory_extension" },
  { 8, "policy", "1008 policy_violation" },
  { 9, "server", "the server is in trouble: 1011 internal_error, 1012 "
    .. "service_restart, 1013 try_again_later, 1014 bad_gateway" },
  { 10, "application", "an application code, 3000-4999" },
  { 11, "other", "any other close: 1005 no_status (a close frame without "
    .. "a code), 1000 or 1001 not clean" },
}

local STATUS_WORD = {}
for _, row in ipairs(cli.STATUS) do STATUS_WORD[row[1]] = row[2] end

local PROTOCOL_CODES = { [1002] = true, [1003] = true, [1007] = true,
  [1009] = true, [1010] = true }
local SERVER_CODES = { [1011] = true, [1012] = true, [1013] = true,
  [1014] = true }
local HANDSHAKE_ERRORS = { http = true, handshake = true, extension = true }

--- The exit status of `connect` for a close event.
-- @tparam table ev the close event
-- @tparam boolean opened whether the WebSocket had opened (false: the
--   event is ws.connect's failure)
-- @treturn integer status
-- @treturn string its word (cli.STATUS)
function cli.status(ev, opened)
  local code, s = ev.code
  if code == 1015 or ev.error == "tls" then s = 5
  elseif not opened then
    s = HANDSHAKE_ERRORS[ev.error] and 4 or 3
  elseif (code == 1000 or code == 1001) and ev.clean then s = 0
  elseif code == 1006 then s = 6
  elseif PROTOCOL_CODES[code] then s = 7
  elseif code == 1008 then s = 8
  elseif SERVER_CODES[code] then s = 9
  elseif code >= 3000 and code <= 4999 then s = 10
  else s = 11 end
  return s, STATUS_WORD[s]
end

--------------------------------------------------------------- output

local stdout, stderr = io.stdout, io.stderr

local function out(s)
  stdout:write(s, "\n")
  stdout:flush()
end

local function note(s)
  stderr:write(s, "\n")
  stderr:flush()
end

local function quoted(s)
  return json_string(s)
end

local CLOSE_KEYS = { "type", "code", "name", "reason", "clean", "initiator",
  "error", "http_status", "message", "peer", "meaning", "cause", "action",
  "exit_status", "status" }

-- Print a close event and its explanation: a JSON line to stdout, or
-- lines to stderr. `status` (connect only) is the exit status.
local function print_close(ev, json, status, peer)
  local ex = codes.explain(ev.code) or {}
  local word = status and STATUS_WORD[status]
  if json then
    out(cli.json(CLOSE_KEYS, {
      type = "close", code = ev.code, name = ev.name or codes[ev.code],
      reason = ev.reason or "", clean = ev.clean == true,
      initiator = ev.initiator, error = ev.error,
      http_status = ev.http_status, message = ev.message, peer = peer,
      meaning = ex.meaning, cause = ex.cause, action = ex.action,
      exit_status = status, status = word,
    }, true))
    return
  end
  local line = { "close:" }
  if peer then line[#line + 1] = peer end
  line[#line + 1] = "code=" .. tostring(ev.code)
  line[#line + 1] = "name=" .. tostring(ev.name or codes[ev.code] or "-")
  line[#line + 1] = "reason=" .. quoted(ev.reason or "")
  line[#line + 1] = "clean=" .. tostring(ev.clean == true)
  line[#line + 1] = "initiator=" .. tostring(ev.initiator or "-")
  line[#line + 1] = "error=" .. tostring(ev.error or "-")
  if ev.http_status then
    line[#line + 1] = "http_status=" .. tostring(ev.http_status)
  end
  note(concat(line, " "))
  if ev.message then note("  message: " .. ev.message) end
  if ex.meaning then
    note("  meaning: " .. ex.meaning)
    note("  cause: " .. ex.cause)
    note("  action: " .. ex.action)
  end
  if status then note(("  exit status %d (%s)"):format(status, word)) end
end

------------------------------------------------------- the command line

-- Option specs: { long, short, key, arg = "NAME" | nil, list = bool,
--   help }. A flag without `arg` sets key = true.
local COMMANDS = {}

COMMANDS.connect = {
  usage = "lua-ws connect URL [options]",
  about = "Open a WebSocket client connection. Lines typed (stdin) are "
    .. "sent as text messages; received messages go to stdout; open, "
    .. "pings, pongs and the close go to stderr. End stdin (Ctrl-D) to "
    .. "close with 1000. The exit status says how the connection closed "
    .. "(see `lua-ws --help`).",
  args = { "url" },
  options = {
    { "--header", "-H", "headers", arg = "'NAME: VALUE'", list = true,
      help = "add a request header (repeatable)" },
    { "--subprotocol", "-s", "protocols", arg = "PROTOCOL", list = true,
      help = "offer a subprotocol (repeatable)" },
    { "--origin", nil, "origin", arg = "ORIGIN", help = "the Origin header" },
    { "--ca", nil, "ca", arg = "FILE",
      help = "trust the CA certificates in FILE (PEM) for wss://" },
    { "--cert", nil, "cert", arg = "FILE",
      help = "client certificate (PEM), with --key" },
    { "--key", nil, "key", arg = "FILE", help = "client certificate's key" },
    { "--insecure", "-k", "insecure",
      help = "do not verify the server's certificate" },
    { "--proxy", nil, "proxy", arg = "URL",
      help = "connect through this HTTP CONNECT proxy" },
    { "--no-proxy", nil, "no_proxy",
      help = "use no proxy, whatever the environment says" },
    { "--unix", nil, "unix", arg = "PATH",
      help = "connect a ws:// or wss:// URL over the Unix socket at PATH "
        .. "(a ws+unix:///PATH:/resource URL needs no flag)" },
    { "--execute", "-x", "execute", arg = "MESSAGE", list = true,
      help = "send MESSAGE (repeatable, in order), then wait -w seconds and "
        .. "close; stdin is not read" },
    { "--wait", "-w", "wait", arg = "SECONDS",
      help = "after the -x messages, or when stdin ends, wait this long "
        .. "for messages before closing (default 1)" },
    { "--binary", "-b", "binary",
      help = "send lines and -x messages as binary messages" },
    { "--ping-interval", "-P", "ping_interval", arg = "SECONDS",
      help = "send a ping every SECONDS" },
    { "--timeout", "-t", "timeout", arg = "SECONDS",
      help = "time limit for TCP, TLS and the opening handshake "
        .. "(default 30)" },
    { "--json", "-j", "json",
      help = "print every event as one JSON object a line, on stdout" },
  },
}

COMMANDS.listen = {
  usage = "lua-ws listen [PORT | --unix PATH] [options]",
  about = "Run a WebSocket server for testing clients (PORT 8080 by "
    .. "default; 0 picks a free one, printed at start). Each connection's "
    .. "open and close event go to stderr; lines typed (stdin) are sent "
    .. "to every client. Runs until interrupted.",
  args = { "port", optional = true },
  options = {
    { "--host", nil, "host", arg = "ADDRESS",
      help = "address to listen on (default 127.0.0.1)" },
    { "--unix", nil, "unix", arg = "PATH",
      help = "listen on a Unix socket at PATH instead (no PORT or --host); "
        .. "a file left by an interrupted run is replaced" },
    { "--unix-mode", nil, "unix_mode", arg = "MODE",
      help = "permissions of the --unix socket file, octal (e.g. 0660)" },
    { "--echo", "-e", "echo",
      help = "send each message back to its sender (the default)" },
    { "--broadcast", "-B", "broadcast",
      help = "send each message to every client" },
    { "--print", "-p", "print",
      help = "print each message to stdout and answer nothing" },
    { "--tls-cert", nil, "tls_cert", arg = "FILE",
      help = "serve wss:// with this certificate (PEM), with --tls-key" },
    { "--tls-key", nil, "tls_key", arg = "FILE",
      help = "the certificate's private key" },
    { "--subprotocol", "-s", "protocols", arg = "PROTOCOL", list = true,
      help = "accept this subprotocol (repeatable, in preference order)" },
    { "--json", "-j", "json",
      help = "print every event as one JSON object a line, on stdout" },
  },
}

COMMANDS.explain = {
  usage = "lua-ws explain CODE|NAME [--json]",
  about = "Explain a close code: what it means, what usually causes it "
    .. "and what to do about it.",
  args = { "code" },
  options = {
    { "--json", "-j", "json", help = "print the explanation as JSON" },
  },
}

local COMMAND_ORDER = { "connect", "listen", "explain" }

local function command_help(name)
  local c = COMMANDS[name]
  local lines = { "usage: " .. c.usage, "", c.about, "", "options:" }
  for _, o in ipairs(c.options) do
    local flag = (o[2] and (o[2] .. ", ") or "    ") .. o[1]
      .. (o.arg and (" " .. o.arg) or "")
    lines[#lines + 1] = ("  %-30s %s"):format(flag, o.help)
  end
  lines[#lines + 1] = ("  %-30s %s"):format("    --help", "show this help")
  return concat(lines, "\n")
end

local function main_help()
  local lines = {
    "usage: lua-ws COMMAND [options]   (" .. cli.VERSION .. ")",
    "",
    "commands:",
    "  connect URL      a WebSocket client: interactive, or scripted with -x",
    "  listen [PORT]    a WebSocket server for testing clients",
    "  explain CODE     what a close code means and what to do about it",
    "",
    "`lua-ws COMMAND --help` lists a command's options.",
    "",
    "exit status of connect (doc/cli.md):",
  }
  for _, row in ipairs(cli.STATUS) do
    lines[#lines + 1] = ("  %2d %-12s %s"):format(row[1], row[2], row[3])
  end
  return concat(lines, "\n")
end

cli.help = function(name)
  if name then return command_help(name) end
  return main_help()
end

local function usage_error(fmt, ...)
  return nil, format(fmt, ...)
end

local function find_option(c, word)
  for _, o in ipairs(c.options) do
    if word == o[1] or (o[2] and word == o[2]) then return o end
  end
end

--- Parse a command line (the words after the program name).
-- @tparam table argv
-- @treturn table|nil `{ command = name, help = bool, ...options }`, with
--   list options as lists | nil, one-line error (the caller exits 2)
function cli.parse(argv)
  local name = argv[1]
  if name == nil or name == "--help" or name == "-h" or name == "help" then
    return { help = true }
  end
  if name == "--version" then return { version = true } end
  local c = COMMANDS[name]
  if not c then
    if name:sub(1, 1) == "-" then
      return usage_error("unknown option %s (try lua-ws --help)", name)
    end
    return usage_error("unknown command %s (try lua-ws --help)", name)
  end
  local r = { command = name }
  local positional = {}
  local i, only_args = 2, false
  while i <= #argv do
    local word = argv[i]
    if only_args or word == "-" or word:sub(1, 1) ~= "-" then
      positional[#positional + 1] = word
    elseif word == "--" then
      only_args = true
    elseif word == "--help" or word == "-h" then
      r.help = true
      return r
    else
      local flag, value = word:match("^(%-%-[^=]+)=(.*)$")
      flag = flag or word
      local o = find_option(c, flag)
      if not o then
        return usage_error("%s: unknown option %s (try lua-ws %s --help)",
          name, flag, name)
      end
      if o.arg then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then
            return usage_error("%s: option %s needs a value (%s)", name, flag,
              o.arg)
          end
        end
        if o.list then
          local l = r[o[3]] or {}
          l[#l + 1] = value
          r[o[3]] = l
        else
          r[o[3]] = value
        end
      else
        if value ~= nil then
          return usage_error("%s: option %s takes no value", name, flag)
        end
        r[o[3]] = true
      end
    end
    i = i + 1
  end
  local want = c.args
  if #positional > #want then
    return usage_error("%s: unexpected argument %s (try lua-ws %s --help)",
      name, positional[#want + 1], name)
  end
  if #positional < #want and not want.optional then
    return usage_error("%s: missing %s (usage: %s)", name, want[1]:upper(),
      c.usage)
  end
  for k, key in ipairs(want) do r[key] = positional[k] end
  return r
end

local function seconds(r, key, flag, default)
  local v = r[key]
  if v == nil then return default end
  local n = tonumber(v)
  if not n or n < 0 or n ~= n or n == math.huge then
    return nil, ("%s: %s needs a number of seconds >= 0, got %s")
      :format(r.command, flag, v)
  end
  return n
end

-- The options of ws.connect for a parsed `connect` command line.
-- @return opts | nil, usage error
function cli.connect_options(r)
  local opts = { protocols = r.protocols, origin = r.origin }
  if r.headers then
    opts.headers = {}
    for _, h in ipairs(r.headers) do
      local k, v = h:match("^%s*([^:%s]+)%s*:%s*(.-)%s*$")
      if not k then
        return nil, ("connect: -H needs 'Name: value', got %q"):format(h)
      end
      opts.headers[k] = v
    end
  end
  if r.cert and not r.key or r.key and not r.cert then
    return nil, "connect: --cert and --key go together"
  end
  if r.ca or r.cert or r.insecure then
    opts.tls = { ca_file = r.ca, cert_file = r.cert, key_file = r.key,
      verify = not r.insecure }
  end
  if r.proxy and r.no_proxy then
    return nil, "connect: --proxy and --no-proxy exclude each other"
  end
  if r.proxy then opts.proxy = r.proxy
  elseif r.no_proxy then opts.proxy = false end
  opts.unix = r.unix
  local err
  opts.timeout, err = seconds(r, "timeout", "--timeout", nil)
  if err then return nil, err end
  return opts
end

--------------------------------------------------------------- stdin

-- Whether fd 0 can be watched by the poller (a terminal, pipe or
-- socket); a regular file or /dev/null cannot, but never blocks either.
local function stdin_pollable()
  local p = core.poller()
  local ok = p:add(0, true, false)
  if ok then p:del(0) end
  p:close()
  return ok and true or false
end

-- Read stdin line by line without blocking the loop: wait until fd 0 is
-- readable, then read one line. stdin is unbuffered, so no line can wait
-- in a C buffer where the poller does not see it. Calls on_line(line)
-- for each line, then on_eof().
local function read_stdin(on_line, on_eof)
  local loop = ws.loop
  local pollable = stdin_pollable()
  io.stdin:setvbuf("no")
  while true do
    if pollable then loop.wait_fd(0, "r") end
    local line = io.stdin:read("*l")
    if line == nil then break end
    on_line((line:gsub("\r$", "")))
  end
  if on_eof then on_eof() end
end

------------------------------------------------------------- connect

local EVENT_KEYS = { "type", "kind", "data", "encoding", "peer" }

-- Print a message, ping or pong.
local function print_event(json, kind, data, mkind, peer)
  if json then
    local binary = mkind == "binary" or not core.utf8_valid(data)
    out(cli.json(EVENT_KEYS, { type = kind, kind = mkind,
      data = binary and cli.base64(data) or data,
      encoding = binary and "base64" or nil, peer = peer }))
  elseif kind == "message" then
    out(data)
  else
    note(kind .. ": " .. data)
  end
end

local OPEN_KEYS = { "type", "url", "protocol", "extensions", "peer", "path" }

local function run_connect(r)
  local opts, err = cli.connect_options(r)
  if not opts then return 2, err end
  local wait
  wait, err = seconds(r, "wait", "-w", 1)
  if not wait then return 2, err end
  local interval
  interval, err = seconds(r, "ping_interval", "--ping-interval", nil)
  if err then return 2, err end
  if interval == 0 then return 2, "connect: --ping-interval must be > 0" end
  if opts.proxy ~= nil then
    local options, schema = require "ws.options", require "ws.schema"
    if not schema.field(options.connect.fields, "proxy") then
      if opts.proxy then
        return 1, "connect: --proxy: this lua-ws has no proxy support"
      end
      opts.proxy = nil -- no proxy is ever used: --no-proxy holds already
    end
  end
  local json = r.json
  local ok, conn, msg, ev = pcall(ws.connect, r.url, opts)
  if not ok then
    -- a bad URL, header or option: ws.connect raises on the caller's
    -- mistakes
    return 2, "connect: " .. tostring(conn):gsub("^bad argument #%d+ to "
      .. "'connect' %((.*)%)$", "%1")
  end
  if not conn then
    ev.message = ev.message or msg
    local status = cli.status(ev, false)
    print_close(ev, json, status)
    return status
  end
  local ext = {}
  for k in pairs(conn.extensions or {}) do ext[#ext + 1] = k end
  if json then
    out(cli.json(OPEN_KEYS, { type = "open", url = r.url,
      protocol = conn.protocol, extensions = concat(ext, ", ") }))
  else
    note(("connected: %s (protocol %s)"):format(r.url,
      conn.protocol or "none"))
  end
  conn:on("message", function(_, data, kind)
    print_event(json, "message", data, kind)
  end)
  conn:on("ping", function(_, data) print_event(json, "ping", data) end)
  conn:on("pong", function(_, data) print_event(json, "pong", data) end)
  local kind = r.binary and "binary" or "text"
  local function finish()
    if wait > 0 then
      conn:wait(wait)
    end
    if not conn.close_event then conn:close("normal") end
  end
  if r.execute then
    ws.spawn(function()
      for _, m in ipairs(r.execute) do
        if not conn:send(m, kind) then return end
      end
      finish()
    end)
  else
    ws.spawn(read_stdin, function(line)
      if not conn.close_event then conn:send(line, kind) end
    end, finish)
  end
  if interval then
    ws.spawn(function()
      local n = 0
      while not conn.close_event do
        ws.sleep(interval)
        if conn.close_event then break end
        n = n + 1
        local data = "lua-ws " .. n
        if not json then note("sent ping: " .. data) end
        conn:ping(data, interval)
      end
    end)
  end
  ev = conn:wait()
  local status = cli.status(ev, true)
  print_close(ev, json, status)
  return status
end

-------------------------------------------------------------- listen

local function run_listen(r)
  local port = tonumber(r.port or 8080)
  if r.unix then
    if r.port or r.host then
      return 2, "listen: --unix excludes PORT and --host"
    end
    if r.unix_mode and not r.unix_mode:match("^0?[0-7][0-7][0-7]$") then
      return 2, "listen: --unix-mode needs an octal mode such as 0660, got "
        .. r.unix_mode
    end
  elseif r.unix_mode then
    return 2, "listen: --unix-mode needs --unix"
  elseif not port or port < 0 or port > 65535 or port ~= floor(port) then
    return 2, "listen: PORT must be 0-65535, got " .. tostring(r.port)
  end
  local modes = (r.echo and 1 or 0) + (r.broadcast and 1 or 0)
    + (r.print and 1 or 0)
  if modes > 1 then
    return 2, "listen: --echo, --broadcast and --print exclude each other"
  end
  local mode = r.broadcast and "broadcast" or r.print and "print" or "echo"
  if (r.tls_cert == nil) ~= (r.tls_key == nil) then
    return 2, "listen: --tls-cert and --tls-key go together"
  end
  local json = r.json
  local clients, order = {}, {}
  local function remove(conn)
    clients[conn] = nil
    for i = #order, 1, -1 do
      if order[i] == conn then table.remove(order, i) end
    end
  end
  local function handler(conn, req)
    local peer = req.peer and (req.peer.unix and "unix"
      or (req.peer.addr .. ":" .. req.peer.port)) or "-"
    clients[conn] = peer
    order[#order + 1] = conn
    if json then
      out(cli.json(OPEN_KEYS, { type = "open", peer = peer, path = req.path,
        protocol = conn.protocol }))
    else
      note(("open: %s %s (protocol %s)"):format(peer, req.path or "/",
        conn.protocol or "none"))
    end
    for data, kind in conn:messages() do
      if mode == "echo" then
        conn:send(data, kind)
      elseif mode == "broadcast" then
        for i = 1, #order do
          if not order[i].close_event then order[i]:send(data, kind) end
        end
      else
        print_event(json, "message", data, kind, peer)
      end
    end
    remove(conn)
    print_close(conn.close_event, json, nil, peer)
  end
  local lopts = { host = r.host or "127.0.0.1", port = port,
    handler = handler, protocols = r.protocols }
  if r.unix then
    lopts.host, lopts.port = nil, nil
    lopts.unix, lopts.unix_mode = r.unix, r.unix_mode
  end
  if r.tls_cert then
    lopts.tls = { cert_file = r.tls_cert, key_file = r.tls_key }
  end
  local ok, server, e1, e2 = pcall(ws.listen, lopts)
  if not ok then return 2, "listen: " .. tostring(server) end
  if not server then
    if r.unix then
      return 1, ("listen: cannot listen on %s: %s"):format(r.unix,
        tostring(e2 or e1))
    end
    return 1, ("listen: cannot listen on %s port %d: %s"):format(lopts.host,
      port, tostring(e2 or e1))
  end
  local url
  if r.unix then
    url = ("%s+unix://%s:/"):format(r.tls_cert and "wss" or "ws", r.unix)
  else
    url = ("%s://%s:%d/"):format(r.tls_cert and "wss" or "ws",
      lopts.host:find(":", 1, true) and ("[" .. lopts.host .. "]")
        or lopts.host, server.port)
  end
  if json then
    out(cli.json({ "type", "url", "port", "unix", "mode" }, {
      type = "listening", url = url, port = server.port, unix = server.unix,
      mode = mode }))
  else
    note(("listening: %s (%s)"):format(url, mode))
  end
  ws.spawn(read_stdin, function(line)
    for i = 1, #order do
      if not order[i].close_event then order[i]:send(line) end
    end
  end)
  ws.run()
  return 0
end

------------------------------------------------------------- explain

local function run_explain(r)
  local code = tonumber(r.code) or r.code
  local ex = codes.explain(code)
  if not ex then
    return 1, ("explain: no explanation for %s (codes 1000-1015, "
      .. "3000-4999, or their names)"):format(r.code)
  end
  if r.json then
    out(cli.json({ "code", "name", "meaning", "cause", "action" }, ex, true))
  else
    out(("%d %s"):format(ex.code, ex.name or "(application code)"))
    out("meaning: " .. ex.meaning)
    out("cause: " .. ex.cause)
    out("action: " .. ex.action)
  end
  return 0
end

--------------------------------------------------------------- main

local RUN = { connect = run_connect, listen = run_listen,
  explain = run_explain }

--- Run the tool. Prints as it goes; returns the exit status (the caller
-- exits with it). A message that comes back with a status is printed to
-- stderr as one line.
-- @tparam table argv the words after the program name
-- @treturn integer exit status
function cli.main(argv)
  stdout:setvbuf("line")
  local r, err = cli.parse(argv)
  local status = 2
  if r and r.version then
    out(cli.VERSION)
    return 0
  elseif r and r.help then
    out(cli.help(r.command))
    return 0
  elseif r then
    status, err = RUN[r.command](r)
  end
  if err then note("lua-ws: " .. err) end
  return status
end

return cli
