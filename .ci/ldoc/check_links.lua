-- Checks the links of the generated reference: every relative href of
-- every page under the directory given (build/doc) must name a file that
-- exists, and its #fragment an id or name on that page. Prints each
-- broken link; exits 1 if there is any. `make doc` runs it after LDoc.
--   lua5.4 .ci/ldoc/check_links.lua build/doc
local root = assert(arg[1], "usage: check_links.lua DIR")

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local pages = {}
local p = assert(io.popen("find '" .. root .. "' -name '*.html'"))
for line in p:lines() do pages[#pages + 1] = line end
p:close()

-- "a/b/../c" -> "a/c"
local function normalize(path)
  local out = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." and #out > 0 and out[#out] ~= ".." then
      out[#out] = nil
    elseif part ~= "." then
      out[#out + 1] = part
    end
  end
  return (path:sub(1, 1) == "/" and "/" or "") .. table.concat(out, "/")
end

local anchors = {}
local function anchors_of(path)
  if anchors[path] == nil then
    local text = read(path)
    local set = false
    if text then
      set = {}
      for a in text:gmatch('%sid%s*=%s*"([^"]*)"') do set[a] = true end
      for a in text:gmatch('%sname%s*=%s*"([^"]*)"') do set[a] = true end
    end
    anchors[path] = set
  end
  return anchors[path]
end

local broken = 0
for _, page in ipairs(pages) do
  local dir = page:match("^(.*)/") or "."
  local text = read(page)
  for href in text:gmatch('href="([^"]*)"') do
    if not href:match("^%a[%w+.-]*:") then
      local file, frag = href:match("^([^#]*)#?(.*)$")
      local target = file == "" and page or normalize(dir .. "/" .. file)
      local ok = true
      if target:match("%.html$") then
        local set = anchors_of(target)
        if not set then ok = false
        elseif frag ~= "" and not set[frag] then ok = false end
      elseif not read(target) and not os.rename(target, target) then
        ok = false
      end
      if not ok then
        broken = broken + 1
        print(("%s: broken link %s"):format(page, href))
      end
    end
  end
end
if broken > 0 then
  print(("%d broken links"):format(broken))
  os.exit(1)
end
