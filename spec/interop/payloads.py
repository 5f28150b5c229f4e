"""Deterministic payloads shared by the Python peers and the Lua specs.

The same bytes as payloads.js and spec/interop/peers.lua:
  binary(n): byte i is (31 * i + 7) mod 256
  text(n):   byte i is 32 + (7 * i) mod 95 (printable ASCII)
  utf8(n):   UTF8_SAMPLE repeated n times
  json(n):   the first n bytes of the lines
             {"seq":I,"user":"user-J","event":"tick","ok":true}\n
             for I = 0, 1, 2, ... and J = I mod 97 (compressible text)
"""

UTF8_SAMPLE = "h\u00e9llo \u2713 \U0001D11E \u65e5\u672c "

_BINARY_BLOCK = bytes((31 * i + 7) & 255 for i in range(256))
_TEXT_BLOCK = "".join(chr(32 + (7 * i) % 95) for i in range(95))


def _json(n):
    lines, length, i = [], 0, 0
    while length < n:
        line = '{"seq":%d,"user":"user-%d","event":"tick","ok":true}\n' % (
            i, i % 97)
        lines.append(line)
        length += len(line)
        i += 1
    return "".join(lines)[:n]


def make(kind, n):
    """The payload: str for "text", "utf8" and "json", bytes for "binary"."""
    if kind == "binary":
        return (_BINARY_BLOCK * (n // 256 + 1))[:n]
    if kind == "text":
        return (_TEXT_BLOCK * (n // 95 + 1))[:n]
    if kind == "utf8":
        return UTF8_SAMPLE * n
    if kind == "json":
        return _json(n)
    raise ValueError("unknown payload kind %s" % kind)


def split(data, n):
    """Split data into n pieces (the last takes the remainder). A str is
    split by characters: websockets sends each piece as its own frame and
    can only encode whole characters."""
    size = len(data) // n
    return [data[i * size:(len(data) if i == n - 1 else (i + 1) * size)]
            for i in range(n)]
