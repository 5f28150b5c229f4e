--- Option schemas: the value types an option may have, and the one
-- validator every entry point runs on its options table at the call.
--
-- A schema describes one options table:
--
--     { fname = "connect", argn = 2, fields = { field, ... } }
--
-- and a field one option:
--
--     { name = "timeout", type = schema.seconds, default = 30,
--       doc = "one line of documentation" }
--
-- `default` is the value used when the option is absent (nil: none);
-- `default_doc` says it in words when it is not a plain value. A field
-- with `required = true` must be given. A type is a table:
-- `expected` (the words after "bad ... ("), `check(v, opts)` (true when
-- `v` is acceptable; `opts` is the whole table, for bounds that depend on
-- another option), `by_type` (describe a bad value by its type, as Lua
-- does for wrong types, rather than by the value), and `schema` for a
-- table of options of its own (`tls`, `heartbeat`). `expected` may be a
-- function of `opts`.
--
-- Errors are raised at the caller's level and name the function, the
-- argument and the option:
--
--     bad argument #2 to 'connect' (unknown option 'tiemout')
--     bad argument #2 to 'connect' (option 'tls.cafile' ... )
--     bad argument #2 to 'connect' (option 'timeout': positive number
--       expected, got -1)
-- @module ws.schema
local type, error, pairs, ipairs, tostring, getmetatable =
  type, error, pairs, ipairs, tostring, getmetatable
local format, concat = string.format, table.concat
local huge, floor = math.huge, math.floor

local schema = {}

--- A value as error messages show it: numbers as written (NaN, inf),
-- strings quoted, nil and booleans by name, anything else by its type.
function schema.describe(v)
  local t = type(v)
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == huge then return "inf" end
    if v == -huge then return "-inf" end
    return tostring(v)
  end
  if t == "string" then return format("%q", v) end
  if t == "nil" or t == "boolean" then return tostring(v) end
  return t
end
local describe = schema.describe

local function is_finite(v)
  return type(v) == "number" and v == v and v > -huge and v < huge
end
schema.is_finite = is_finite

local function is_integer(v)
  return is_finite(v) and v == floor(v)
end

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and type(mt.__call) == "function"
end
schema.is_callable = is_callable

---------------------------------------------------------------- the types

--- Seconds: a finite number > 0.
schema.seconds = {
  expected = "positive number", doc = "seconds > 0",
  check = function(v) return is_finite(v) and v > 0 end,
}

--- A size or a count: an integer from 1 to 2^53.
schema.count = {
  expected = "positive integer", doc = "integer >= 1",
  check = function(v) return is_integer(v) and v >= 1 and v <= 2 ^ 53 end,
}

--- A size in bytes: a count, documented as bytes.
schema.size = {
  expected = "positive integer", doc = "bytes (integer >= 1)", bytes = true,
  check = schema.count.check,
}

--- An integer in [lo, hi].
function schema.integer(lo, hi)
  return {
    expected = hi and format("integer from %d to %d", lo, hi)
      or format("integer >= %d", lo),
    doc = hi and format("integer %d-%d", lo, hi) or format("integer >= %d", lo),
    check = function(v)
      return is_integer(v) and v >= lo and (hi == nil or v <= hi)
    end,
  }
end

--- A finite number >= min (> min when `strict`). `min` may be a function
-- of the options table (a bound set by another option).
function schema.number(min, strict, min_doc)
  local op = strict and ">" or ">="
  local function bound(opts)
    if type(min) == "function" then return min(opts) end
    return min
  end
  return {
    expected = function(opts)
      return format("finite number %s %s", op, describe(bound(opts)))
    end,
    doc = format("number %s %s", op, min_doc or describe(min)),
    check = function(v, opts)
      if not is_finite(v) then return false end
      local b = bound(opts)
      if strict then return v > b end
      return v >= b
    end,
  }
end

--- One of the given strings.
function schema.one_of(...)
  local allowed, set = { ... }, {}
  local quoted = {}
  for i, s in ipairs(allowed) do
    set[s] = true
    quoted[i] = format("%q", s)
  end
  local words = #quoted == 1 and quoted[1] or
    concat(quoted, ", ", 1, #quoted - 1) .. " or " .. quoted[#quoted]
  return {
    expected = words, doc = concat(quoted, " | "),
    check = function(v) return set[v] == true end,
  }
end

schema.string = {
  expected = "string", doc = "string", by_type = true,
  check = function(v) return type(v) == "string" end,
}

schema.boolean = {
  expected = "boolean", doc = "boolean", by_type = true,
  check = function(v) return type(v) == "boolean" end,
}

schema.func = {
  expected = "function", doc = "function", by_type = true,
  check = function(v) return type(v) == "function" end,
}

--- A function or a table with a __call metamethod.
schema.callable = {
  expected = "function", doc = "function", by_type = true,
  check = is_callable,
}

--- A list of strings: a table with entries 1..n, all strings, and no
-- other keys (a string alone is refused, not taken as a list of one).
schema.strings = {
  expected = "list of strings", doc = "{ string, ... }",
  check = function(v)
    if type(v) ~= "table" then return false end
    local n = #v
    for k, s in pairs(v) do
      if not is_integer(k) or k < 1 or k > n or type(s) ~= "string" then
        return false
      end
    end
    return true
  end,
}

--- Header fields: a table of name = value, names strings, values
-- strings or numbers (ws.handshake checks the characters when it builds
-- the head).
--- A table whose every key satisfies key_ok(k) and every value
-- value_ok(v).
function schema.map(expected, doc, key_ok, value_ok)
  return { expected = expected, doc = doc,
    check = function(v)
      if type(v) ~= "table" then return false end
      for k, x in pairs(v) do
        if not key_ok(k) or not value_ok(x) then return false end
      end
      return true
    end }
end

schema.headers = schema.map("table of name = value strings",
  "{ [name] = value }",
  function(k) return type(k) == "string" end,
  function(x) return type(x) == "string" or type(x) == "number" end)

--- A table of options described by a schema of its own (its fields).
function schema.table(sub)
  return { expected = "table", doc = "table", by_type = true, fields = sub,
    check = function(v) return type(v) == "table" end }
end

--- A boolean, or a table of options described by its own fields
-- (`deflate = true | false | { ... }`).
function schema.switch(sub)
  return { expected = "boolean or table", doc = "boolean | table",
    by_type = true, fields = sub,
    check = function(v) return type(v) == "boolean" or type(v) == "table" end }
end

--- A schema whose fields are the concatenation of the given lists of
-- fields (later lists may not repeat a name).
function schema.fields(...)
  local out, seen = {}, {}
  for _, list in ipairs({ ... }) do
    for _, f in ipairs(list) do
      if seen[f.name] then
        error("option '" .. f.name .. "' defined twice", 2)
      end
      seen[f.name] = true
      out[#out + 1] = f
    end
  end
  return out
end

--- The field of a list by name, or nil.
function schema.field(fields, name)
  for _, f in ipairs(fields) do
    if f.name == name then return f end
  end
  return nil
end

-------------------------------------------------------------- validation

local function fail(s, level, msg, ...)
  error(format("bad argument #%d to '%s' (", s.argn, s.fname)
    .. format(msg, ...) .. ")", level + 1)
end

local function walk(s, fields, opts, prefix, level)
  -- unknown names first: a typo is the likeliest mistake
  for k in pairs(opts) do
    if type(k) ~= "string" or not schema.field(fields, k) then
      fail(s, level + 1, s.unknown or "unknown option '%s'",
        prefix .. tostring(k))
    end
  end
  for _, f in ipairs(fields) do
    local v = opts[f.name]
    local t = f.type
    local label = (s.label or "option '%s'"):format(prefix .. f.name)
    if v == nil then
      local required = f.required
      if type(required) == "function" then required = required(opts) end
      if required then
        local expected = t.expected
        if type(expected) == "function" then expected = expected(opts) end
        fail(s, level + 1, "%s: %s expected, got nil", label, expected)
      end
    elseif not t.check(v, opts) then
      local expected = t.expected
      if type(expected) == "function" then expected = expected(opts) end
      fail(s, level + 1, "%s: %s expected, got %s", label, expected,
        t.by_type and type(v) or describe(v))
    elseif t.fields and type(v) == "table" then
      walk(s, t.fields, v, prefix .. f.name .. ".", level + 1)
    end
  end
end

--- Check an options table against a schema, raising at `level` (as for
-- `error`, counted from the function calling this one) on the first
-- problem: the table itself (a table is expected; nil is taken as {}
-- unless the schema says `required = true`), an unknown name (also inside
-- sub-tables), a value of the wrong type or out of range, a required
-- option missing.
-- @tparam table s the schema: `fname`, `argn`, `fields`, and optionally
--   `required`, `what` ("table" by default: the words for the argument
--   itself), `unknown` and `label` (formats for the name of an unknown
--   and of a bad option)
-- @param opts the caller's options
-- @tparam integer level
-- @treturn table opts (an empty table for nil)
function schema.check(s, opts, level)
  if opts == nil and not s.required then return {} end
  if type(opts) ~= "table" then
    fail(s, level + 1, "%s expected, got %s", s.what or "table", type(opts))
  end
  walk(s, s.fields, opts, "", level + 1)
  return opts
end

--- A copy of `opts` with the defaults of `fields` filled in for the
-- options it does not give (only the names in `fields`).
function schema.with_defaults(fields, opts)
  local out = {}
  for _, f in ipairs(fields) do
    local v = opts[f.name]
    if v == nil then v = f.default end
    out[f.name] = v
  end
  return out
end

return schema
