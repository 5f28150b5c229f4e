-- Runs the fenced code blocks of Markdown files against the built library
-- and checks the results the text states. `make doc-check` runs it on
-- README.md and doc/*.md with lua/ and build/5.4/ on the paths, from the
-- checkout root.
--
--   lua5.4 .ci/doc_blocks.lua FILE.md...            run every block
--   lua5.4 .ci/doc_blocks.lua --extract KEY=VALUE FILE.md
--                              print the body of the block marked KEY=VALUE
--                              (.ci/run takes the install commands this way)
--
-- What runs:
--   ```lua        with lua5.4, one process a group (below), bounded by a
--                 timeout. A line `expr --> value` (several per line are
--                 allowed) checks that expr evaluates to the Lua literal
--                 value; text after the last value is commentary. On
--                 `print(x, ...) --> value` the line prints as written and
--                 x is checked.
--   ```sh/bash    with bash -e from the checkout root.
--   ```c          as the body of `void doc_block(uint8_t *buf,
--                 size_t len)` (csrc/core/ws.h included), compiled with the
--                 core under ASan+UBSan and called once with a masked
--                 client text frame "hi" in buf.
--   no language   text (diagrams, command lines, output); not run.
--   anything else (nginx, ...) must carry a skip marker.
--
-- Markers: an HTML comment on the line right before the fence,
--   <!-- doc-run: WORD WORD=VALUE ... -->
--   skip (reason)   not run; the reason is required.
--   install=LUA     the README's LuaRocks install commands for LUA; run
--                   verbatim by .ci/run's "LuaRocks" step, in a fresh clone
--                   with a throwaway HOME, not here.
--   continue        this block continues the last block before it that
--                   runs (in the same file): same group, and the lua blocks
--                   of a group run as one program.
--   port=N          the group's blocks talk on port N; the runner puts a
--                   free port in place of the number N in their text.
--   server=echo     start examples/echo_server.lua on that port first.
--   background      this block is the group's server: started first, waited
--                   for until the port accepts connections, stopped after.
--   timeout=S       seconds for the block (default 20).
local TIMEOUT = 20

local function die(fmt, ...)
  io.stderr:write(("doc_blocks: " .. fmt .. "\n"):format(...))
  os.exit(2)
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Parses "<!-- doc-run: ... -->" into a table; nil when the line is not one.
local function parse_marker(line, where)
  local body = line:match("^%s*<!%-%-%s*doc%-run:%s*(.-)%s*%-%->%s*$")
  if not body then
    if line:match("^%s*<!%-%-%s*doc%-run") then
      die("%s: malformed marker %q", where, line)
    end
    return nil
  end
  local m = {}
  local reason
  body = body:gsub("^skip%s*%((.*)%)%s*", function(r) reason = r return "" end)
  if reason then
    if not reason:match("%S") then die("%s: skip needs a reason", where) end
    m.skip = reason
  end
  for word in body:gmatch("%S+") do
    local k, v = word:match("^([%w_]+)=(.+)$")
    if k then m[k] = v
    elseif word:match("^[%w_]+$") then m[word] = true
    else die("%s: bad marker word %q", where, word) end
  end
  local known = { skip = 1, install = 1, continue = 1, port = 1, server = 1,
                  background = 1, timeout = 1 }
  for k in pairs(m) do
    if not known[k] then die("%s: unknown marker word %q", where, k) end
  end
  if m.skip == true then die("%s: skip needs a reason: skip (why)", where) end
  if m.server and m.server ~= "echo" then
    die("%s: unknown server %q (echo)", where, m.server)
  end
  if (m.server or m.background) and not m.port then
    die("%s: server=/background need port=N", where)
  end
  return m
end

-- The fenced blocks of a Markdown file, in order.
local function blocks_of(path)
  local text = read_file(path) or die("cannot read %s", path)
  local lines = {}
  for l in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do
    lines[#lines + 1] = l
  end
  local out, i = {}, 1
  while i <= #lines do
    local fence, info = lines[i]:match("^(```+)%s*([%w_+-]*)")
    if fence then
      local start, body = i, {}
      i = i + 1
      while i <= #lines and not lines[i]:match("^" .. fence .. "%s*$") do
        body[#body + 1] = lines[i]
        i = i + 1
      end
      if i > #lines then die("%s:%d: unclosed fence", path, start) end
      local where = path .. ":" .. start
      out[#out + 1] = {
        file = path, line = start, where = where, lang = info,
        text = table.concat(body, "\n") .. "\n",
        marker = start > 1 and parse_marker(lines[start - 1], where) or nil,
      }
    elseif lines[i]:match("^%s*<!%-%-%s*doc%-run") and
        not (lines[i + 1] or ""):match("^```") then
      die("%s:%d: a doc-run marker must be the line right before a fence",
        path, i)
    end
    i = i + 1
  end
  return out
end

-- --extract KEY=VALUE FILE: print the marked block's body.
if arg[1] == "--extract" then
  local key, value = (arg[2] or ""):match("^([%w_]+)=(.+)$")
  if not key or not arg[3] then die("usage: --extract KEY=VALUE FILE.md") end
  local found = 0
  for _, b in ipairs(blocks_of(arg[3])) do
    if b.marker and tostring(b.marker[key]) == value then
      io.write(b.text)
      found = found + 1
    end
  end
  if found ~= 1 then die("%s: %d blocks marked %s=%s", arg[3], found, key, value) end
  os.exit(0)
end

-- Lua: `expr --> value` lines become checks, on the same line numbers.

local function literal_prefix(s, where)
  s = s:match("^%s*(.-)$")
  for _, pat in ipairs{ '^"[^"]*"', "^'[^']*'", "^%-?%d[%w%.]*", "^true%f[%W]",
                        "^false%f[%W]", "^nil%f[%W]" } do
    local lit = s:match(pat)
    if lit and load("return " .. lit) then return lit, s:sub(#lit + 1) end
  end
  die("%s: cannot read the value after --> in %q", where, s)
end

local function check_line(line, where)
  if not line:find("-->", 1, true) then return line end
  local code = line:match("^(.-)%-%-[^>]") or line  -- before a plain comment
  if not code:find("-->", 1, true) then return line end
  local checks, rest = {}, line
  while rest:find("-->", 1, true) do
    local expr, after = rest:match("^(.-)%-%->(.*)$")
    if not expr:match("%S") then break end
    if not load("return " .. expr) then
      die("%s: `%s -->`: only an expression may stand before -->", where,
        expr:match("^%s*(.-)%s*$"))
    end
    local lit
    lit, rest = literal_prefix(after, where)
    local what = where .. ": " .. expr:match("^%s*(.-)%s*$")
    local printed = expr:match("^%s*print%s*(%b())%s*$")
    if printed then  -- print(x, ...) --> v: prints as written, checks x
      checks[#checks + 1] = ("do local __t = table.pack%s " ..
        "print(table.unpack(__t, 1, __t.n)) __doc_check(%q, %s, __t[1], %s) end")
        :format(printed, what, lit, lit)
    else
      checks[#checks + 1] = ("__doc_check(%q, %s, (%s), %s)")
        :format(what, lit, expr, lit)
    end
  end
  return table.concat(checks, "; ")
end

local PRELUDE = "local function __doc_check(what, _, got, want) " ..
  "if got ~= want then error(('%s --> %s, expected %s'):format(what, " ..
  "tostring(got), tostring(want)), 0) end end "

local function lua_program(members)
  local out = {}
  for _, b in ipairs(members) do
    local n = 0
    for l in b.text:gmatch("(.-)\n") do
      n = n + 1
      out[#out + 1] = check_line(l, b.file .. ":" .. (b.line + n))
    end
  end
  out[1] = PRELUDE .. (out[1] or "")
  return table.concat(out, "\n") .. "\n"
end

local C_MAIN = [[
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include "ws.h"
static void doc_block(uint8_t *buf, size_t len) {
#line %d "%s"
%s
}
int main(void) {
  /* a client text frame "hi", masked with 01 02 03 04 */
  uint8_t frame[] = { 0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2 };
  doc_block(frame, sizeof frame);
  puts("c block ran");
  return 0;
}
]]

local workdir = os.getenv("DOC_BLOCKS_DIR") or "build/doc-blocks"
os.execute("mkdir -p " .. sh_quote(workdir))

local function run(cmd)
  local ok, how, code = os.execute(cmd)
  return ok == true, how == "exit" and code or 128 + (code or 0)
end

local function free_port()
  local core = require "ws.core"
  local l = assert(core.tcp_listen("127.0.0.1", 0))
  local port = l:port()
  l:close()
  return port
end

-- Starts cmd in the background (bounded by `timeout`); returns its pid.
local function start(cmd, log, seconds)
  local p = assert(io.popen(("timeout -k 2 %d %s >%s 2>&1 & echo $!")
    :format(seconds, cmd, sh_quote(log))))
  local pid = tonumber(p:read("l"))
  p:close()
  return pid
end

local function wait_port(port)
  return run(("timeout 10 bash -c 'until (exec 3<>/dev/tcp/127.0.0.1/%d) " ..
    "2>/dev/null; do sleep 0.1; done'"):format(port))
end

local LANG = { lua = "lua", sh = "sh", bash = "sh", c = "c" }

-- Runs one group; returns nil on success, else the failure's words.
local function run_group(g, n)
  local seconds = TIMEOUT
  local port_from, port_to
  local servers, foreground = {}, {}
  for _, b in ipairs(g) do
    local m = b.marker or {}
    if m.timeout then seconds = math.max(seconds, tonumber(m.timeout)) end
    if m.port then port_from = m.port end
  end
  local base = ("%s/%02d-%s-%d"):format(workdir, n,
    g[1].file:gsub("[/.]", "_"), g[1].line)
  local function text_of(b)
    if not port_from then return b end
    local c = setmetatable({}, { __index = b })
    c.text = b.text:gsub("%f[%d]" .. port_from .. "%f[%D]", tostring(port_to))
    return c
  end
  if port_from then port_to = free_port() end
  local pids = {}
  local function stop_all()
    for _, pid in ipairs(pids) do os.execute("kill " .. pid .. " 2>/dev/null") end
  end
  for _, b in ipairs(g) do
    local m = b.marker or {}
    if m.server == "echo" and not servers.echo then
      servers.echo = true
      pids[#pids + 1] = start("lua5.4 examples/echo_server.lua " .. port_to,
        base .. "-echo.log", seconds + 10)
    end
    if m.background then
      if b.lang ~= "lua" then return "background blocks must be lua" end
      local file = base .. "-bg" .. b.line .. ".lua"
      write_file(file, lua_program{ text_of(b) })
      pids[#pids + 1] = start("lua5.4 " .. sh_quote(file),
        base .. "-bg" .. b.line .. ".log", seconds + 10)
    else
      foreground[#foreground + 1] = text_of(b)
    end
  end
  if port_to and not wait_port(port_to) then
    stop_all()
    return "nothing listened on port " .. port_to .. " (see " .. base .. "-*.log)"
  end
  local lang = foreground[1] and LANG[foreground[1].lang]
  for _, b in ipairs(foreground) do
    if LANG[b.lang] ~= lang then stop_all() return "mixed languages in a group" end
  end
  local cmd
  if lang == "lua" then
    write_file(base .. ".lua", lua_program(foreground))
    cmd = "lua5.4 " .. sh_quote(base .. ".lua")
  elseif lang == "sh" then
    local t = {}
    for _, b in ipairs(foreground) do t[#t + 1] = b.text end
    write_file(base .. ".sh", table.concat(t))
    cmd = "bash -e " .. sh_quote(base .. ".sh")
  elseif lang == "c" then
    if #foreground ~= 1 then stop_all() return "c blocks do not group" end
    local b = foreground[1]
    write_file(base .. ".c", C_MAIN:format(b.line + 1, b.file, b.text))
    local make = run(("gcc -std=c11 -Wall -Wextra -Werror -Wno-unused-variable -g -fsanitize=address,undefined " ..
      "-fno-sanitize-recover=undefined -Icsrc/core %s csrc/core/*.c -o %s -lssl -lcrypto -lz " ..
      ">%s 2>&1"):format(sh_quote(base .. ".c"), sh_quote(base .. ".bin"),
      sh_quote(base .. ".log")))
    if not make then
      stop_all()
      return "did not compile:\n" .. (read_file(base .. ".log") or "")
    end
    cmd = sh_quote(base .. ".bin")
  end
  local ok, code = true, 0
  if cmd then
    ok, code = run(("timeout -k 2 %d %s >%s 2>&1"):format(seconds, cmd,
      sh_quote(base .. ".log")))
  end
  stop_all()
  if ok then return nil end
  local out = read_file(base .. ".log") or ""
  if code == 124 then return ("timed out after %d s\n%s"):format(seconds, out) end
  return ("exit %d\n%s"):format(code, out)
end

-- Collect the blocks, decide what each is, and run the groups.
local files = { ... }
if #files == 0 then die("usage: lua5.4 .ci/doc_blocks.lua FILE.md...") end
local groups, counts, failures = {}, { ran = 0, skipped = 0, install = 0, text = 0 }, 0
for _, path in ipairs(files) do
  local last
  for _, b in ipairs(blocks_of(path)) do
    local m = b.marker or {}
    if m.continue then
      if not last then die("%s: continue with nothing before it", b.where) end
      last[#last + 1] = b
    elseif m.skip then
      counts.skipped = counts.skipped + 1
      print(("skip  %s (%s): %s"):format(b.where, b.lang, m.skip))
    elseif m.install then
      counts.install = counts.install + 1
      print(("ci    %s (%s): install=%s, run by .ci/run's LuaRocks step")
        :format(b.where, b.lang, m.install))
    elseif b.lang == "" then
      counts.text = counts.text + 1
    elseif not LANG[b.lang] then
      print(("FAIL  %s: a %s block; the runner cannot run it, so it needs " ..
        "<!-- doc-run: skip (reason) -->"):format(b.where, b.lang))
      failures = failures + 1
    else
      last = { b }
      groups[#groups + 1] = last
    end
  end
end

for n, g in ipairs(groups) do
  local t0 = os.time()
  local err = run_group(g, n)
  local lines = {}
  for _, b in ipairs(g) do lines[#lines + 1] = b.line end
  local label = ("%s:%s (%s)"):format(g[1].file, table.concat(lines, "+"), g[1].lang)
  if err then
    failures = failures + 1
    print(("FAIL  %s: %s"):format(label, err))
  else
    counts.ran = counts.ran + #g
    print(("ok    %s %ds"):format(label, os.time() - t0))
  end
end

print(("doc blocks: %d ran, %d run by the LuaRocks step, %d skipped, %d text, %d failed")
  :format(counts.ran, counts.install, counts.skipped, counts.text, failures))
os.exit(failures == 0 and 0 or 1)
