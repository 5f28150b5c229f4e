"""Interop peer: a WebSocket client on Python `websockets`, driven by the
Lua specs.

    /usr/bin/python3 spec/interop/py_client.py URL OUTFILE [--ca FILE]
        [--protocol P] [--deflate JSON] -- STEP...

The same steps and result lines as node_client.js (see there), except that
"fragment" splits text by characters, not bytes: websockets sends each
piece of an iterable as one frame and encodes whole characters only.
Pings from the server are logged as they come: "got-ping PAYLOAD".
The steps "ext", "params" and "stats" report the response's
Sec-WebSocket-Extensions, the negotiated parameters (py_deflate.params) and
the compression counters (py_deflate.stats). --deflate JSON turns
permessage-deflate on: "{}" for websockets' default compression, else the
ClientPerMessageDeflateFactory arguments.

Written for websockets 10.x (Debian's python3-websockets, importable by
/usr/bin/python3 only).
"""
import asyncio
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402
from websockets.legacy.client import WebSocketClientProtocol  # noqa: E402

import payloads  # noqa: E402
import py_deflate  # noqa: E402

URL, OUT_FILE = sys.argv[1], sys.argv[2]
DASH = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
HEAD, STEPS = sys.argv[:DASH], sys.argv[DASH + 1:]


def option(name):
    if name in HEAD:
        return HEAD[HEAD.index(name) + 1]
    return None


def out(line):
    with open(OUT_FILE, "a", encoding="utf-8") as f:
        f.write(line + "\n")


class Finished(Exception):
    pass


class LoggingProtocol(WebSocketClientProtocol):
    """Logs each ping the server sends; websockets answers it itself."""

    async def pong(self, data=b""):
        data_bytes = data.encode() if isinstance(data, str) else data
        out("got-ping " + data_bytes.decode("utf-8", "replace"))
        await super().pong(data)


def connect(url):
    context = None
    if url.startswith("wss:") or url.startswith("wss+unix:"):
        context = ssl.create_default_context(cafile=option("--ca"))
    protocol = option("--protocol")
    if url.startswith("ws+unix://") or url.startswith("wss+unix://"):
        # Node ws's form, ws+unix:///socket/path:/resource, through
        # websockets.unix_connect (which takes the socket path apart)
        scheme, rest = url.split("://", 1)
        rest = rest[rest.index("/"):]
        path, _, target = rest.partition(":")
        uri = "%s://localhost%s" % (scheme[:-5], target or "/")
        return websockets.unix_connect(
            path, uri, ssl=context, create_protocol=LoggingProtocol,
            subprotocols=[protocol] if protocol else None,
            ping_interval=None, max_size=64 * 1024 * 1024, open_timeout=10,
            **py_deflate.options(option("--deflate"), "client"))
    return websockets.connect(
        url, ssl=context, create_protocol=LoggingProtocol,
        subprotocols=[protocol] if protocol else None,
        ping_interval=None, max_size=64 * 1024 * 1024, open_timeout=10,
        **py_deflate.options(option("--deflate"), "client"))


def to_bytes(message):
    return message.encode() if isinstance(message, str) else message


def kind_of(message):
    return "text" if isinstance(message, str) else "binary"


async def expect_message(ws):
    try:
        return await ws.recv()
    except websockets.ConnectionClosed:
        out("unexpected-close %s %s" % (ws.close_code, ws.close_reason))
        raise Finished()


def verdict(message, expected):
    data = to_bytes(message)
    return "%s %d %s" % (kind_of(message), len(data),
                         "ok" if data == to_bytes(expected) else "mismatch")


async def many(n, m):
    """N connections opened together; once all are open each sends M
    numbered messages, one at a time, checking every echo; then all close."""
    counts = {"ok": 0, "bad": 0, "clean": 0}
    conns = await asyncio.gather(*(connect(URL) for _ in range(n)))

    async def one(i, ws):
        for j in range(1, m + 1):
            text = "client %d message %d %s" % (
                i, j, payloads.make("text", (i * 31 + j * 7) % 200))
            await ws.send(text)
            if await ws.recv() == text:
                counts["ok"] += 1
            else:
                counts["bad"] += 1
        await ws.close(1000, "client %d done" % i)
        if ws.close_code == 1000:
            counts["clean"] += 1

    await asyncio.gather(*(one(i + 1, ws) for i, ws in enumerate(conns)))
    return "ok=%d bad=%d closed=%d" % (counts["ok"], counts["bad"],
                                       counts["clean"])


async def run_steps(ws):
    for step in STEPS:
        name, *args = step.split(" ")
        if name in ("echo", "fragment"):
            expected = payloads.make(args[0], int(args[1]))
            if name == "echo":
                await ws.send(expected)
            else:
                await ws.send(payloads.split(expected, int(args[2])))
            out("%s: %s" % (step, verdict(await expect_message(ws), expected)))
        elif name == "ext":
            out("ext " + ws.response_headers.get(
                "Sec-WebSocket-Extensions", "-"))
        elif name == "params":
            out("params " + py_deflate.params(ws))
        elif name == "stats":
            out("stats " + py_deflate.stats(ws))
        elif name == "send":
            await ws.send(" ".join(args))
        elif name == "recv":
            message = await expect_message(ws)
            data = to_bytes(message)
            text = (" " + message) if isinstance(message, str) and \
                len(data) <= 100 else ""
            out("recv %s %d%s" % (kind_of(message), len(data), text))
        elif name == "expect":
            expected = payloads.make(args[0], int(args[1]))
            out("%s: %s" % (step, verdict(await expect_message(ws), expected)))
        elif name == "ping":
            payload = " ".join(args)
            await (await ws.ping(payload))
            out("pong " + payload)
        elif name in ("close", "wait-close"):
            if name == "close":
                await ws.close(int(args[0]), " ".join(args[1:]))
            await ws.wait_closed()
            out("closed %s %s" % (ws.close_code, ws.close_reason))
        elif name == "many":
            out("%s: %s" % (step, await many(int(args[0]), int(args[1]))))
        else:
            out("unknown step " + step)
            raise Finished()


async def main():
    try:
        ws = await connect(URL)
    except Exception as err:  # noqa: BLE001 - reported, not raised
        out("error %s" % (getattr(err, "reason", None) or err))
        return 1
    try:
        await run_steps(ws)
    except Finished:
        return 1
    finally:
        await ws.close(1000)
    return 0


if __name__ == "__main__":
    try:
        code = asyncio.run(asyncio.wait_for(main(), 60))
    except asyncio.TimeoutError:
        out("timeout")
        code = 1
    out("done")
    sys.exit(code)
