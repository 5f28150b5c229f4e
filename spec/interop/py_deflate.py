"""permessage-deflate instrumentation shared by the Python peers.

Counts, per connection, the payload bytes of the compressed messages
websockets sends and receives, before and after zlib, by wrapping its
PerMessageDeflate extension. The same counters as node_deflate.js (and
our conn:deflate_stats()):
  tx_raw/tx_wire   bytes given to compress / the compressed frame payloads
  rx_wire/rx_raw   compressed frame payloads received / bytes inflated
  tx_msgs/rx_msgs  compressed messages sent / received
Uncompressed messages (RSV1 clear) are not counted.

Written for websockets 10.x (Debian's python3-websockets).
"""
import json

from websockets import frames
from websockets.extensions import permessage_deflate as pmd

KEYS = ("tx_raw", "tx_wire", "rx_wire", "rx_raw", "tx_msgs", "rx_msgs")

_decode = pmd.PerMessageDeflate.decode
_encode = pmd.PerMessageDeflate.encode


def _counters(ext):
    if not hasattr(ext, "_interop_stats"):
        ext._interop_stats = dict.fromkeys(KEYS, 0)
    return ext._interop_stats


def _counted_decode(self, frame, *, max_size=None):
    if frame.opcode in frames.CTRL_OPCODES:
        return _decode(self, frame, max_size=max_size)
    if frame.opcode is frames.OP_CONT:
        compressed = self.decode_cont_data
    else:
        compressed = frame.rsv1
    wire = len(frame.data)
    result = _decode(self, frame, max_size=max_size)
    if compressed:
        s = _counters(self)
        s["rx_wire"] += wire
        s["rx_raw"] += len(result.data)
        if frame.fin:
            s["rx_msgs"] += 1
    return result


def _counted_encode(self, frame):
    result = _encode(self, frame)
    # websockets compresses every data frame once the extension is on
    if frame.opcode not in frames.CTRL_OPCODES:
        s = _counters(self)
        s["tx_raw"] += len(frame.data)
        s["tx_wire"] += len(result.data)
        if frame.fin:
            s["tx_msgs"] += 1
    return result


pmd.PerMessageDeflate.decode = _counted_decode
pmd.PerMessageDeflate.encode = _counted_encode


def _extension(ws):
    for ext in ws.extensions:
        if isinstance(ext, pmd.PerMessageDeflate):
            return ext
    return None


def stats(ws):
    """"tx_raw=N tx_wire=N rx_wire=N rx_raw=N tx_msgs=N rx_msgs=N"."""
    ext = _extension(ws)
    s = _counters(ext) if ext else dict.fromkeys(KEYS, 0)
    return " ".join("%s=%d" % (k, s[k]) for k in KEYS)


def params(ws):
    """The negotiated parameters as JSON, keys sorted ("-" when none), in
    websockets' terms (local_*, remote_*)."""
    ext = _extension(ws)
    if ext is None:
        return "-"
    return json.dumps({
        "local_max_window_bits": ext.local_max_window_bits,
        "local_no_context_takeover": ext.local_no_context_takeover,
        "remote_max_window_bits": ext.remote_max_window_bits,
        "remote_no_context_takeover": ext.remote_no_context_takeover,
    }, sort_keys=True, separators=(",", ":"))


def options(text, role):
    """The connect/serve keyword arguments for the --deflate option: None
    (absent) turns compression off; "{}" is websockets' default
    compression; else JSON of the ServerPerMessageDeflateFactory /
    ClientPerMessageDeflateFactory arguments (server_no_context_takeover,
    client_max_window_bits, ...)."""
    if text is None:
        return {"compression": None}
    kwargs = json.loads(text)
    if not kwargs:
        return {"compression": "deflate"}
    factory = (pmd.ServerPerMessageDeflateFactory if role == "server"
               else pmd.ClientPerMessageDeflateFactory)
    return {"compression": None, "extensions": [factory(**kwargs)]}
