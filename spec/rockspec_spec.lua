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

describe("rockspec/lua-ws-scm-1.rockspec", function()
  local spec = load_rockspec("rockspec/lua-ws-scm-1.rockspec")
  local modules = spec.build.modules

  it("builds with the builtin backend and needs OpenSSL", function()
    assert.are.equal("builtin", spec.build.type)
    assert.are.equal("crypto", spec.external_dependencies.OPENSSL.library)
  end)

  it("installs every lua/ws/**.lua file under its module name", function()
    local found = files("lua/ws", ".lua")
    assert.is_true(#found > 10, "found only " .. #found .. " files")
    for _, path in ipairs(found) do
      local name = path:match("^lua/(.*)%.lua$"):gsub("/", ".")
      if name == "ws.init" then name = "ws" end
      assert.are.equal(path, modules[name], "module " .. name)
    end
  end)

  it("compiles every csrc/**.c file into ws.core", function()
    local listed = {}
    for _, src in ipairs(modules["ws.core"].sources) do listed[src] = true end
    local found = files("csrc", ".c")
    assert.is_true(#found > 10, "found only " .. #found .. " files")
    for _, path in ipairs(found) do
      assert.is_true(listed[path] == true, path .. " missing from ws.core")
    end
  end)
end)
