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

local function files(dir, suffix)
  local t = {}
  for name in lfs.dir(dir) do
    if name:sub(-#suffix) == suffix then t[#t + 1] = dir .. "/" .. name end
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

  it("installs every lua/ws/*.lua file under its module name", function()
    for _, path in ipairs(files("lua/ws", ".lua")) do
      local name = path:match("^lua/(.*)%.lua$"):gsub("/", ".")
      if name == "ws.init" then name = "ws" end
      assert.are.equal(path, modules[name], "module " .. name)
    end
  end)

  it("compiles every csrc/*.c file into ws.core", function()
    local listed = {}
    for _, src in ipairs(modules["ws.core"].sources) do listed[src] = true end
    for _, path in ipairs(files("csrc", ".c")) do
      assert.is_true(listed[path] == true, path .. " missing from ws.core")
    end
  end)
end)
