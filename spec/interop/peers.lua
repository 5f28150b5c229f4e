--- Real peers for the interop specs: Node `ws` and Python `websockets`
-- servers and clients run as child processes, the payloads they share
-- with us, and test certificates made with the openssl command.
--
-- A peer runs in the background with its output in a temporary file; we
-- wait for what it writes while driving our own loop with `ws.step`, so
-- our servers keep serving and every wait is bounded in time. Paths are
-- relative to the repository root, where busted runs.
local ws = require "ws"

local peers = {}

local DIR = "spec/interop/"
local PYTHON = "/usr/bin/python3" -- the Python that has Debian's websockets

--------------------------------------------------------------- payloads

local BINARY_BLOCK, TEXT_BLOCK
do
  local b, t = {}, {}
  for i = 0, 255 do b[i + 1] = string.char((31 * i + 7) % 256) end
  for i = 0, 94 do t[i + 1] = string.char(32 + (7 * i) % 95) end
  BINARY_BLOCK, TEXT_BLOCK = table.concat(b), table.concat(t)
end

--- 1- to 4-byte UTF-8 sequences, 23 bytes: "héllo ✓ 𝄞 日本 ".
peers.UTF8_SAMPLE = "h\195\169llo \226\156\147 \240\157\132\158 " ..
  "\230\151\165\230\156\172 "

-- The json payload, built once to the longest length asked for so far.
local json_cache = ""

local function json(n)
  if #json_cache < n then
    local lines, length, i = {}, 0, 0
    while length < n do
      local line = ('{"seq":%d,"user":"user-%d","event":"tick","ok":true}\n')
        :format(i, i % 97)
      lines[#lines + 1] = line
      length = length + #line
      i = i + 1
    end
    json_cache = table.concat(lines)
  end
  return json_cache:sub(1, n)
end

--- The payload the peers build for (kind, n), byte for byte the same as
-- payloads.js and payloads.py: "binary" byte i = (31i + 7) mod 256,
-- "text" byte i = 32 + 7i mod 95, "utf8" the sample repeated n times,
-- "json" the first n bytes of the lines
-- `{"seq":I,"user":"user-J","event":"tick","ok":true}\n` (J = I mod 97).
function peers.payload(kind, n)
  if kind == "utf8" then return peers.UTF8_SAMPLE:rep(n) end
  if kind == "json" then return json(n) end
  local block = kind == "binary" and BINARY_BLOCK or TEXT_BLOCK
  return block:rep(math.floor(n / #block) + 1):sub(1, n)
end

------------------------------------------------------------- processes

-- Peers and tools run without the sanitizer runtime `make test` preloads
-- into this process (it slows them and reports their leaks), and Python
-- leaves no __pycache__ in the tree.
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "
  .. "PYTHONDONTWRITEBYTECODE=1 "

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end
peers.read_file = read_file
peers.quote = quote

local function lines_of(text)
  local t = {}
  for line in text:gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

local function succeeded(...)
  local r = ...
  return r == true or r == 0
end

local function sh(cmd)
  if not succeeded(os.execute(CLEAN_ENV .. "sh -c " .. quote(cmd)
      .. " >/dev/null 2>&1")) then
    error("command failed: " .. cmd, 2)
  end
end

local function alive(pid)
  return succeeded(os.execute("kill -0 " .. pid .. " 2>/dev/null"))
end

--- Drive our loop until check() returns a value; give up after `timeout`
-- seconds. Returns that value.
function peers.drive(what, check, timeout)
  local deadline = ws.now() + (timeout or 30)
  for _ = 1, 1e6 do
    local v = check()
    if v ~= nil then return v end
    if ws.now() > deadline then break end
    ws.step(0.01)
  end
  error("timed out waiting for " .. what, 2)
end

local node_ready = false

-- Install the Node peer's dependencies (pinned by package-lock.json) the
-- first time they are needed and missing.
local function ensure_node_modules()
  if node_ready then return end
  if read_file(DIR .. "node_modules/ws/package.json") == "" then
    sh("npm ci --no-audit --no-fund --prefix " .. quote(DIR))
  end
  node_ready = true
end

local Process = {}
Process.__index = Process

-- Start argv in the background, stderr to a temporary file and stdout to
-- `out` (a new temporary file when nil).
local function start(argv, out)
  local parts = {}
  for i = 1, #argv do parts[i] = quote(argv[i]) end
  local err = os.tmpname()
  out = out or os.tmpname()
  local p = assert(io.popen(("%s%s >%s 2>%s </dev/null & echo $!"):format(
    CLEAN_ENV, table.concat(parts, " "), quote(out), quote(err))))
  local pid = tonumber(p:read("*l"))
  p:close()
  assert(pid, "could not start " .. argv[1])
  return setmetatable({ pid = pid, out = out, err = err, argv = argv },
    Process)
end

--- Start any command as a peer process (argv: a list of words), without
-- the sanitizer runtime; it has the Process methods below.
peers.start = start

local ABI = jit and "jit" or _VERSION:match("%d+%.%d+")

--- argv running a Lua program of this checkout (examples/x.lua, ...) with
-- this interpreter and the plain build of ws.core for it (build/<abi>,
-- made if missing: `make test` builds only the asan and jit ones), for
-- peers.start.
function peers.lua_program(script, ...)
  local f = io.open("build/" .. ABI .. "/ws/core.so", "rb")
  if f then
    f:close()
  else
    sh("make --no-print-directory " .. (jit and "luajit" or
      ("LUA_INC=/usr/include/lua" .. ABI .. " BUILD=build/" .. ABI .. " all")))
  end
  local argv = { "env", "LUA_PATH=./lua/?.lua;./lua/?/init.lua;;",
    "LUA_CPATH=./build/" .. ABI .. "/?.so;;",
    jit and "luajit" or ("lua" .. ABI), script, ... }
  return argv
end

--- The lines the process has written so far (complete lines only).
function Process:lines()
  return lines_of(read_file(self.out))
end

--- What the process wrote to stderr.
function Process:stderr()
  return read_file(self.err)
end

--- Stop the process and remove its files. Idempotent.
function Process:stop()
  if self.stopped then return end
  self.stopped = true
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  for _, path in ipairs({ self.out, self.err }) do
    if path:match("^/tmp/") then os.remove(path) end
  end
end

-- Fail with what the process said when it exited unexpectedly.
function Process:check_alive(what)
  if not alive(self.pid) then
    error(("%s exited while we waited for %s\nstdout:\n%s\nstderr:\n%s")
      :format(self.argv[2], what, read_file(self.out), self:stderr()), 3)
  end
end

--- Wait until the process has written the line `line` (driving our
-- loop); returns it.
function Process:wait_line(line, timeout)
  local n = 0
  return peers.drive(("%q from %s"):format(line, self.argv[2]), function()
    for _, l in ipairs(self:lines()) do
      if l == line then return l end
    end
    n = n + 1
    if n % 50 == 0 then self:check_alive(("%q"):format(line)) end
  end, timeout)
end

--- Wait until the process has written a line starting with `prefix`
-- (driving our loop); returns the rest of the first such line.
function Process:wait_prefix(prefix, timeout)
  local n = 0
  return peers.drive(("a line %q... from %s"):format(prefix, self.argv[2]),
    function()
      for _, l in ipairs(self:lines()) do
        if l:sub(1, #prefix) == prefix then return l:sub(#prefix + 1) end
      end
      n = n + 1
      if n % 50 == 0 then self:check_alive(("%q..."):format(prefix)) end
    end, timeout)
end

--- Wait until a client peer has written "done"; returns its result lines
-- without "done".
function Process:wait_done(timeout)
  local n = 0
  return peers.drive("results of " .. self.argv[2], function()
    local lines = self:lines()
    if lines[#lines] == "done" then
      lines[#lines] = nil
      return lines
    end
    n = n + 1
    if n % 50 == 0 then self:check_alive('"done"') end
  end, timeout or 60)
end

-- The command line of a peer: impl "node" or "python", role "server" or
-- "client".
local function peer_argv(impl, role)
  if impl == "node" then
    ensure_node_modules()
    return { "node", DIR .. "node_" .. role .. ".js" }
  end
  return { PYTHON, DIR .. "py_" .. role .. ".py" }
end

--- Start a server peer ("node" or "python"), plain or with TLS
-- (`opts.cert`, `opts.key`), with a message size limit when
-- `opts.max_payload` is given (else 64 MiB), with permessage-deflate when
-- `opts.deflate` is given (a JSON string, see the peer's --deflate), on a
-- Unix socket at `opts.unix` instead of TCP, and wait until it listens.
-- The result has `port` (0 on a Unix socket) and `url(path)` (a ws+unix:
-- URL on a Unix socket), and the Process methods.
function peers.server(impl, opts)
  opts = opts or {}
  local argv = peer_argv(impl, "server")
  if opts.cert then
    argv[#argv + 1] = "--cert"
    argv[#argv + 1] = opts.cert
    argv[#argv + 1] = "--key"
    argv[#argv + 1] = opts.key
  end
  if opts.max_payload then
    argv[#argv + 1] = "--max-payload"
    argv[#argv + 1] = tostring(opts.max_payload)
  end
  if opts.deflate then
    argv[#argv + 1] = "--deflate"
    argv[#argv + 1] = opts.deflate
  end
  if opts.unix then
    argv[#argv + 1] = "--unix"
    argv[#argv + 1] = opts.unix
  end
  local p = start(argv)
  local n = 0
  local ok, err = pcall(peers.drive, impl .. " server to listen", function()
    local first = p:lines()[1]
    if first and opts.unix and first == "UNIX " .. opts.unix then
      return 0
    end
    if first then return assert(tonumber(first:match("^PORT (%d+)$")),
      "unexpected first line " .. first) end
    n = n + 1
    if n % 50 == 0 then p:check_alive("PORT") end
  end, 15)
  if not ok then
    p:stop()
    error(err, 2)
  end
  p.port = ok and err
  local scheme = opts.cert and "wss" or "ws"
  local host = opts.host or "127.0.0.1"
  function p.url(path)
    if opts.unix then
      return ("%s+unix://%s:%s"):format(scheme, opts.unix, path or "/")
    end
    return ("%s://%s:%d%s"):format(scheme, host, p.port, path or "/")
  end
  return p
end

--- Start a client peer ("node" or "python") against url, running steps
-- (see node_client.js). opts: `ca` (CA file for wss), `protocol`,
-- `deflate` (a JSON string, see the peer's --deflate).
-- Returns a Process: call wait_done for its results.
function peers.client(impl, url, steps, opts)
  opts = opts or {}
  local argv = peer_argv(impl, "client")
  local out = os.tmpname()
  argv[#argv + 1] = url
  argv[#argv + 1] = out
  if opts.ca then
    argv[#argv + 1] = "--ca"
    argv[#argv + 1] = opts.ca
  end
  if opts.protocol then
    argv[#argv + 1] = "--protocol"
    argv[#argv + 1] = opts.protocol
  end
  if opts.deflate then
    argv[#argv + 1] = "--deflate"
    argv[#argv + 1] = opts.deflate
  end
  argv[#argv + 1] = "--"
  for i = 1, #steps do argv[#argv + 1] = steps[i] end
  -- the client writes its results to `out`; its stdout is only noise
  local p = start(argv, "/dev/null")
  p.out = out
  return p
end

--- Run a client peer to the end; returns its result lines.
function peers.run_client(impl, url, steps, opts)
  local p = peers.client(impl, url, steps, opts)
  local ok, lines = pcall(p.wait_done, p, opts and opts.timeout)
  local stderr = p:stderr()
  p:stop()
  if not ok then error(lines, 2) end
  return lines, stderr
end

----------------------------------------------------------- certificates

--- Make test certificates in a new temporary directory (returned):
-- ca.pem (a root CA), server.pem/key (DNS:localhost, IP:127.0.0.1, from
-- the CA), other.pem/key (DNS:other.example only, from the CA) and
-- self.pem/key (self-signed, DNS:localhost, IP:127.0.0.1).
function peers.certs()
  local dir = os.tmpname()
  os.remove(dir)
  sh("mkdir -p " .. quote(dir))
  local function run(fmt, ...)
    sh(("cd %s && " .. fmt):format(quote(dir), ...))
  end
  local newkey = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  local function ext(name, san)
    local f = assert(io.open(dir .. "/" .. name .. ".ext", "w"))
    f:write("basicConstraints = CA:FALSE\n",
      "keyUsage = critical, digitalSignature\n",
      "extendedKeyUsage = serverAuth\n",
      "subjectKeyIdentifier = hash\n",
      "authorityKeyIdentifier = keyid\n",
      "subjectAltName = ", san, "\n")
    f:close()
  end
  run("openssl req -x509 %s -keyout ca.key -out ca.pem -days 30 " ..
    "-subj '/CN=lua-ws interop CA' " ..
    "-addext 'basicConstraints=critical,CA:TRUE' " ..
    "-addext 'keyUsage=critical,keyCertSign,cRLSign'", newkey)
  local function leaf(name, cn, san)
    ext(name, san)
    run("openssl req -new %s -keyout %s.key -out %s.csr -subj '/CN=%s'",
      newkey, name, name, cn)
    run("openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key " ..
      "-CAcreateserial -days 30 -extfile %s.ext -out %s.pem",
      name, name, name)
  end
  leaf("server", "localhost", "DNS:localhost, IP:127.0.0.1")
  leaf("other", "other.example", "DNS:other.example")
  run("openssl req -x509 %s -keyout self.key -out self.pem -days 30 " ..
    "-subj '/CN=localhost' " ..
    "-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1'", newkey)
  return dir
end

--- Parse a peer's compression counters, "tx_raw=N tx_wire=N ..." (see
-- node_deflate.js), into a table of numbers.
function peers.counters(text)
  local t = {}
  for k, v in text:gmatch("(%w+_%w+)=(%d+)") do t[k] = tonumber(v) end
  return t
end

--- Remove a directory made by certs().
function peers.remove_dir(dir)
  if dir and dir:match("^/tmp/") then sh("rm -rf " .. quote(dir)) end
end

return peers
