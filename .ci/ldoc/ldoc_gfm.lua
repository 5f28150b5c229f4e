-- A Markdown formatter for LDoc (config.ld: format = "ldoc_gfm"), for the
-- subset of GitHub-flavoured Markdown that README.md, doc/*.md and the
-- LDoc comments in lua/ws/ are written in: ATX headings (with GitHub's
-- anchors as ids, so "options.md#wsconnecturl-opts" keeps working), pipe
-- tables, bullet and numbered lists (nested by indentation), block quotes,
-- fenced and indented code, raw HTML blocks, and inline code, links,
-- images, **strong**, *emphasis* and backslash escapes.
--
-- Debian's lua-ldoc ships no Markdown processor (it falls back to plain
-- text, leaving tables and backticks as typed) and lua-discount has no
-- pipe tables, hence this file. LDoc runs it under Lua 5.1 (`lua-any`),
-- so it keeps to 5.1. LDoc has already turned code blocks into
-- <pre>...</pre> (prettified) before it calls the formatter; this passes
-- such HTML through untouched.
--
-- `make doc` puts .ci/ldoc/ on LUA_PATH; `require "ldoc_gfm"` returns
-- function(text) -> html.

local concat, insert = table.concat, table.insert

local function escape_html(s)
  return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end

local function escape_attr(s)
  return (escape_html(s):gsub('"', "&quot;"))
end

-- GitHub's heading anchor: lowercase, punctuation but "-" and "_" dropped,
-- spaces to "-".
local function slug(text)
  text = text:gsub("<[^>]*>", "")
  return (text:lower():gsub("[^%w%- _]", ""):gsub(" ", "-"))
end

------------------------------------------------------------------ inline

local inline

-- Placeholders keep code spans and raw HTML away from the other rules.
local function protect(store, html)
  store[#store + 1] = html
  return "\1" .. #store .. "\2"
end

local function restore(s, store)
  -- nested placeholders (a link whose label holds code) need two passes
  for _ = 1, 3 do
    local n
    s, n = s:gsub("\1(%d+)\2", function(i) return store[tonumber(i)] end)
    if n == 0 then break end
  end
  return s
end

local function emphasis(s)
  s = s:gsub("%*%*([^%s*][^*]-)%*%*", "<strong>%1</strong>")
  s = s:gsub("__([^%s_][^_]-)__", "<strong>%1</strong>")
  -- *x* anywhere; _x_ only between non-word characters (not snake_case)
  s = s:gsub("%*([^%s*][^*]-)%*", "<em>%1</em>")
  s = s:gsub("%f[%w_]_([^%s_][^_]-)_%f[^%w_]", "<em>%1</em>")
  return s
end

-- Tags passed through as HTML; anything else in angle brackets
-- ("close:<name>") is text.
local INLINE_TAGS = {}
for t in ("a abbr b br code del em i img ins kbd mark q s small span "
    .. "strong sub sup tt u"):gmatch("%a+") do
  INLINE_TAGS[t] = true
end

-- Code spans that name a module of the reference or one of its documented
-- members (`ws.connect`, `ws.reconnect.default`, `ws.run()`) link to it.
-- config.ld's `file` list says which modules there are (config.ld turns
-- LDoc's own backtick references off: LDoc applies them a line at a time,
-- which pairs the backticks of a span broken over two lines wrongly). The
-- href starts with "@@/", which config.ld's postprocess_html replaces by
-- the way from the page to the root of the reference.
local modules -- name -> set of documented member names
local function load_modules()
  modules = {}
  local f = io.open("config.ld", "r")
  if not f then return end
  local cfg = f:read("*a")
  f:close()
  for path, base in cfg:gmatch('"(lua/ws/([%w_]+)%.lua)"') do
    local name = base == "init" and "ws" or "ws." .. base
    local members = {}
    local src = io.open(path, "r")
    if src then
      local text = src:read("*a")
      src:close()
      -- the module's table: what the file returns (`return M`)
      local mt = text:match("\nreturn%s+([%w_]+)%s*$") or ""
      for line in text:gmatch("[^\n]+") do
        local m = line:match("^%-%-%s*@function%s+([%w_]+)%s*$")
          or line:match("^%-%-%s*@field%s+([%w_]+)")
        if m then members[m] = m end
        local t, f = line:match("^function%s+([%w_]+)%.([%w_]+)%s*%(")
        if not t then t, f = line:match("^([%w_]+)%.([%w_]+)%s*=") end
        if t then
          -- another table's function (Protocol.new) keeps its table in
          -- LDoc's anchor
          members[f] = (t == mt or t:match("^%l")) and f or t .. "." .. f
        end
      end
    end
    modules[name] = members
  end
end

local function code_link(code)
  if not code:match("^ws[%w_.]*$") and not code:match("^ws[%w_.]*%(%)$") then
    return nil
  end
  if not modules then load_modules() end
  local name = code:gsub("%(%)$", "")
  if modules[name] then return "@@/modules/" .. name .. ".html" end
  local mod, member = name:match("^(.*)%.([%w_]+)$")
  if mod and modules[mod] and modules[mod][member] then
    return "@@/modules/" .. mod .. ".html#" .. modules[mod][member]
  end
  return nil
end

inline = function(s)
  local store = {}
  -- code spans: `x`, ``x``
  s = s:gsub("(`+)(.-[^`])%1%f[^`]", function(_, code)
    code = code:gsub("^ (.*) $", "%1"):gsub("\n", " ")
    local html = "<code>" .. escape_html(code) .. "</code>"
    local href = code_link(code)
    if href then html = ('<a href="%s">%s</a>'):format(href, html) end
    return protect(store, html)
  end)
  -- backslash escapes
  s = s:gsub("\\([\\`%*_{}%[%]()#%+%-%.!|<>])", function(c)
    return protect(store, escape_html(c))
  end)
  -- raw HTML tags and comments, entities
  s = s:gsub("<!%-%-.-%-%->", function(t) return protect(store, t) end)
  s = s:gsub("<(/?)(%a[%w-]*)([^<>]*)>", function(slash, tag, rest)
    if not INLINE_TAGS[tag:lower()] then return nil end
    return protect(store, "<" .. slash .. tag .. rest .. ">")
  end)
  s = s:gsub("&(#?%w+;)", "\3%1")
  s = escape_html(s):gsub("\3", "&")
  -- images and links: [text](href "title")
  s = s:gsub("(!?)(%b[])(%b())", function(bang, label, target)
    local href = target:sub(2, -2):match("^%s*(%S+)")
    if not href then return nil end
    label = label:sub(2, -2)
    if bang == "!" then
      return protect(store, ('<img src="%s" alt="%s"/>')
        :format(escape_attr(href), escape_attr(restore(label, store))))
    end
    return protect(store, ('<a href="%s">%s</a>')
      :format(escape_attr(href), emphasis(label)))
  end)
  s = emphasis(s)
  return restore(s, store)
end

------------------------------------------------------------------ blocks

local blocks

local function indent_of(line)
  local sp = line:match("^( *)")
  return #sp
end

local function is_blank(line) return not line:find("%S") end

local function list_marker(line)
  local ind, marker, rest = line:match("^( *)([%-%*%+])%s+(.*)$")
  if ind and #ind <= 3 then return #ind, "ul", #ind + 2, rest end
  local num
  ind, num, rest = line:match("^( *)(%d+)[%.%)]%s+(.*)$")
  if ind and #ind <= 3 then return #ind, "ol", #ind + #num + 2, rest, num end
  return nil
end

local function is_table_sep(line)
  return line and line:match("^%s*|?%s*:?%-%-+:?%s*|") ~= nil
end

local function split_row(line)
  line = line:gsub("^%s*|", ""):gsub("|%s*$", "")
  local cells, cur = {}, {}
  local i = 1
  while i <= #line do
    local c = line:sub(i, i)
    if c == "\\" and line:sub(i + 1, i + 1) == "|" then
      cur[#cur + 1] = "|"
      i = i + 2
    else
      if c == "|" then
        cells[#cells + 1] = concat(cur)
        cur = {}
      else
        cur[#cur + 1] = c
      end
      i = i + 1
    end
  end
  cells[#cells + 1] = concat(cur)
  for k, v in ipairs(cells) do cells[k] = v:match("^%s*(.-)%s*$") end
  return cells
end

-- A line of block-level HTML: LDoc's <pre> and section anchors, tables
-- and the like. Inline tags at the start of a line (LDoc turns `x` into
-- <code> or a link before we see it) belong to the paragraph.
local BLOCK_TAGS = {}
for t in ("blockquote div dl h1 h2 h3 h4 h5 h6 hr ol p pre table ul")
    :gmatch("%w+") do
  BLOCK_TAGS[t] = true
end

local function is_html_block(line)
  local tag = line:match("^</?(%a%w*)")
  if tag and BLOCK_TAGS[tag:lower()] then return true end
  return line:match("^<a name=\"[^\"]*\"></a>%s*$") ~= nil
end

local function starts_block(line, nextline)
  return line:match("^ ? ? ?#+%s") or line:match("^ ? ? ?```")
    or is_html_block(line) or line:match("^<!%-%-")
    or list_marker(line) or line:match("^%s*>")
    or (line:match("^%s*|") and is_table_sep(nextline))
end

-- Renders lines (a list of strings) as HTML blocks into out. `tight`:
-- paragraphs without <p> (the items of a list with no blank lines).
blocks = function(lines, out, tight)
  local i, n = 1, #lines
  while i <= n do
    local line = lines[i]
    if is_blank(line) then
      i = i + 1
    elseif line:match("^<pre") then
      repeat
        out[#out + 1] = lines[i]
        i = i + 1
      until i > n or lines[i - 1]:match("</pre>")
    elseif line:match("^<!%-%-") then
      repeat
        out[#out + 1] = lines[i]
        i = i + 1
      until i > n or lines[i - 1]:match("%-%->")
    elseif is_html_block(line) then
      out[#out + 1] = line
      i = i + 1
    elseif line:match("^ ? ? ?```") then
      local code = {}
      i = i + 1
      while i <= n and not lines[i]:match("^ ? ? ?```") do
        code[#code + 1] = escape_html(lines[i])
        i = i + 1
      end
      i = i + 1
      out[#out + 1] = "<pre>" .. concat(code, "\n") .. "</pre>"
    elseif line:match("^ ? ? ?#+%s") then
      local hashes, text = line:match("^ ? ? ?(#+)%s+(.-)%s*#*%s*$")
      local level = math.min(#hashes, 6)
      local html = inline(text)
      out[#out + 1] = ('<h%d id="%s">%s</h%d>')
        :format(level, slug(html), html, level)
      i = i + 1
    elseif indent_of(line) >= 4 and not tight then
      local raw, cut = {}, math.huge
      while i <= n and (indent_of(lines[i]) >= 4 or is_blank(lines[i])) do
        raw[#raw + 1] = lines[i]
        if not is_blank(lines[i]) then cut = math.min(cut, indent_of(lines[i])) end
        i = i + 1
      end
      while #raw > 0 and is_blank(raw[#raw]) do raw[#raw] = nil end
      local code = {}
      for k, l in ipairs(raw) do code[k] = escape_html(l:sub(cut + 1)) end
      out[#out + 1] = "<pre>" .. concat(code, "\n") .. "</pre>"
    elseif line:match("^%s*|") and is_table_sep(lines[i + 1]) then
      local head = split_row(line)
      local aligns = {}
      for k, c in ipairs(split_row(lines[i + 1])) do
        if c:match("^:.*:$") then aligns[k] = "center"
        elseif c:match(":$") then aligns[k] = "right" end
      end
      local function cell(tag, k, text)
        local a = aligns[k] and (' style="text-align:%s"'):format(aligns[k]) or ""
        return ("<%s%s>%s</%s>"):format(tag, a, inline(text), tag)
      end
      local t = { '<table class="md-table">', "<thead><tr>" }
      for k, c in ipairs(head) do t[#t + 1] = cell("th", k, c) end
      t[#t + 1] = "</tr></thead><tbody>"
      i = i + 2
      while i <= n and lines[i]:match("^%s*|") do
        t[#t + 1] = "<tr>"
        for k, c in ipairs(split_row(lines[i])) do t[#t + 1] = cell("td", k, c) end
        t[#t + 1] = "</tr>"
        i = i + 1
      end
      t[#t + 1] = "</tbody></table>"
      out[#out + 1] = concat(t, "\n")
    elseif line:match("^%s*>") then
      local quoted = {}
      while i <= n and not is_blank(lines[i]) do
        quoted[#quoted + 1] = (lines[i]:gsub("^%s*> ?", ""))
        i = i + 1
      end
      out[#out + 1] = "<blockquote>"
      blocks(quoted, out)
      out[#out + 1] = "</blockquote>"
    elseif list_marker(line) then
      local base, kind = list_marker(line)
      local items, loose = {}, false
      while i <= n do
        local ind, k, content_at, rest, num = list_marker(lines[i])
        if not ind or ind ~= base or k ~= kind then break end
        local item = { rest, num = num }
        i = i + 1
        -- the item's lines: indented ones, lazy continuations, and blank
        -- lines followed by indented ones
        while i <= n do
          local l = lines[i]
          if is_blank(l) then
            local j = i
            while j <= n and is_blank(lines[j]) do j = j + 1 end
            if j <= n and indent_of(lines[j]) >= content_at then
              loose = true
              for _ = i, j - 1 do item[#item + 1] = "" end
              i = j
            else
              break
            end
          elseif indent_of(l) >= content_at then
            item[#item + 1] = l:sub(content_at + 1)
            i = i + 1
          elseif indent_of(l) > base and list_marker(l) then
            item[#item + 1] = l:sub(indent_of(l) + 1)
            i = i + 1
          elseif not list_marker(l) and not starts_block(l, lines[i + 1]) then
            item[#item + 1] = (l:gsub("^%s+", ""))
            i = i + 1
          else
            break
          end
        end
        items[#items + 1] = item
        -- a blank line between items makes the list loose
        if i <= n and is_blank(lines[i]) then
          local j = i
          while j <= n and is_blank(lines[j]) do j = j + 1 end
          local ind2, k2 = list_marker(lines[j] or "")
          if ind2 == base and k2 == kind then loose = true; i = j end
        end
      end
      local open = kind
      if kind == "ol" and items[1].num and items[1].num ~= "1" then
        open = ('ol start="%s"'):format(items[1].num)
      end
      out[#out + 1] = "<" .. open .. ">"
      for _, item in ipairs(items) do
        local inner = {}
        blocks(item, inner, not loose)
        out[#out + 1] = "<li>" .. concat(inner, "\n") .. "</li>"
      end
      out[#out + 1] = "</" .. kind .. ">"
    else
      local para = { line }
      i = i + 1
      while i <= n and not is_blank(lines[i])
          and not starts_block(lines[i], lines[i + 1]) do
        para[#para + 1] = lines[i]
        i = i + 1
      end
      local text = inline(concat(para, "\n"))
      out[#out + 1] = tight and text or "<p>" .. text .. "</p>"
    end
  end
  return out
end

return function(text)
  local lines = {}
  text = text:gsub("\r\n", "\n"):gsub("\t", "    ")
  for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  return concat(blocks(lines, {}), "\n") .. "\n"
end
