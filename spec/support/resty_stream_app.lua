-- The nginx side of spec/stream_spec.lua: a ws.resty location with
-- `stream` on. It reads the client's message in parts, answers
-- "got <bytes> <parts> <bad>" (bad: parts whose first or last byte is not
-- where the pattern puts it: byte i is "0123456789abcdef"[i % 16]), then
-- sends a message of the same size back with send_part in 32 KiB parts.
local resty = require "ws.resty"

local app = {}
local PATTERN = "0123456789abcdef"

function app.serve()
  resty.serve{ stream = true, max_message_size = 64 * 1024 * 1024,
    handler = function(conn)
      local bytes, parts, bad = 0, 0, 0
      repeat
        local data, _, fin = conn:receive{ partial = true, timeout = 10 }
        if not data then return end
        parts = parts + 1
        local n = #data
        if n > 0 and (data:byte(1) ~= PATTERN:byte(bytes % 16 + 1)
            or data:byte(n) ~= PATTERN:byte((bytes + n - 1) % 16 + 1)) then
          bad = bad + 1
        end
        bytes = bytes + n
      until fin
      conn:send(("got %d %d %d"):format(bytes, parts, bad))
      local chunk = PATTERN:rep(2048)
      local sent = 0
      while sent < bytes do
        local k = math.min(#chunk, bytes - sent)
        assert(conn:send_part(chunk:sub(1, k), "binary", sent + k == bytes))
        sent = sent + k
      end
      conn:receive(10) -- until the client closes
    end }
end

return app
