-- The rock must install every module in the tree and build every C file.
local lfs = require "lfs"

local function load_rockspec(path)
  local env = {}
  local chunk
  if setfenv then
    chunk = assert(loadfile(path))
    setfenv(chunk, env)
  else
    chunk = assert(loadfile(path, "t", env))
  end
  chunk()
  return env
end

-- Every file under dir (recursively) whose name ends with suffix.
local function files(dir, suffix, t)
  t = t or {}
  for name in lfs.dir(dir) do
    local path = dir .. "/" .. name
    if name ~= "." and name ~= ".." and
        lfs.attributes(path, "mode") == "directory" then
      files(path, suffix, t)
    elseif name:sub(-#suffix) == suffix then
      t[#t + 1] = path
    end
  end
  table.sort(t)
  return t
end

-- The Makefile's source lists (CORE_SRC, NET_SRC, LUA_SRC), joined
-- across continuation lines: the files rock-build compiles into ws.core.
local function makefile_sources(path)
  local text = assert(io.open(path)):read("*a")
  text = text:gsub("\\\n", " ")
  local listed = {}
  for _, var in ipairs { "CORE_SRC", "NET_SRC", "LUA_SRC" } do
    local line = text:match("\n" .. var .. "%s*=([^\n]*)")
    assert(line, var .. " not found in " .. path)
    for src in line:gmatch("%S+") do listed[src] = true end
  end
  return listed
end

describe("rockspec/lua-ws-scm-1.rockspec", function()
  local spec = load_rockspec("rockspec/lua-ws-scm-1.rockspec")
  local modules = spec.build.install.lua

  it("builds with the Makefile's rock-build target and needs OpenSSL", function()
    assert.are.equal("make", spec.build.type)
    assert.are.equal("rock-build", spec.build.build_target)
    assert.are.equal(false, spec.build.install_pass)
    assert.are.equal("build/rock/ws/core.so", spec.build.install.lib["ws.core"])
    assert.are.equal("crypto", spec.external_dependencies.OPENSSL.library)
  end)

  it("needs zlib, whose directories reach rock-build", function()
    assert.are.equal("z", spec.external_dependencies.ZLIB.library)
    assert.are.equal("zlib.h", spec.external_dependencies.ZLIB.header)
    assert.are.equal("$(ZLIB_INCDIR)", spec.build.build_variables.ZLIB_INCDIR)
    assert.are.equal("$(ZLIB_LIBDIR)", spec.build.build_variables.ZLIB_LIBDIR)
  end)

  it("installs every lua/ws/**.lua file under its module name", function()
    local found = files("lua/ws", ".lua")
    assert.is_true(#found > 10, "found only " .. #found .. " files")
    local count = 0
    for _, path in ipairs(found) do
      local name = path:match("^lua/(.*)%.lua$"):gsub("/", ".")
      if name == "ws.init" then name = "ws" end
      assert.are.equal(path, modules[name], "module " .. name)
    end
    for _ in pairs(modules) do count = count + 1 end
    assert.are.equal(#found, count, "modules listed that do not exist")
  end)

  it("compiles every csrc/**.c file into ws.core", function()
    local listed = makefile_sources("Makefile")
    local found = files("csrc", ".c")
    assert.is_true(#found > 10, "found only " .. #found .. " files")
    for _, path in ipairs(found) do
      assert.is_true(listed[path] == true, path .. " missing from the Makefile")
    end
  end)
end)
