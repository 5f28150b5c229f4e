"""Interop peer: a WebSocket server on Python `websockets`, driven by the
Lua specs.

    /usr/bin/python3 spec/interop/py_server.py [--cert FILE --key FILE]
        [--max-payload BYTES] [--deflate JSON] [--unix PATH]

Listens on 127.0.0.1, any free port, and prints "PORT <n>" once listening
(wss:// when --cert and --key are given); with --unix, on a Unix socket at
PATH instead (websockets.unix_serve), and prints "UNIX PATH". Every message is echoed with its
kind, except text messages starting with "cmd:", which are commands:
  cmd:close CODE [REASON...]   close with CODE and REASON
  cmd:terminate                drop TCP with no close frame
  cmd:ping PAYLOAD             ping; the pong is answered with "pong:PAYLOAD"
  cmd:send KIND SIZE           send payloads.make(KIND, SIZE)
  cmd:fragment KIND SIZE N     the same message in N frames
  cmd:header NAME              send "header NAME VALUE" (request header)
  cmd:stats                    send "stats <counters>" (py_deflate.py; the
                               counters from before this reply)
  cmd:params                   send "params <negotiated parameters JSON|->"
Events are printed as lines, the request path naming the connection:
  open PATH PROTOCOL|-   ping PATH PAYLOAD   close PATH CODE REASON
  offer PATH <request Sec-WebSocket-Extensions|->
  answer PATH <response Sec-WebSocket-Extensions|->   (both after open)
  stats PATH <counters>                        (just before close)
--deflate JSON turns permessage-deflate on: "{}" for websockets' default
compression, else the ServerPerMessageDeflateFactory arguments.

Written for websockets 10.x (Debian's python3-websockets, importable by
/usr/bin/python3 only). Runs until SIGTERM, and never longer than 5 minutes.
"""
import asyncio
import os
import signal
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402
from websockets.legacy.server import WebSocketServerProtocol  # noqa: E402

import payloads  # noqa: E402
import py_deflate  # noqa: E402


def log(line):
    print(line, flush=True)


def option(name):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return None


class LoggingProtocol(WebSocketServerProtocol):
    """Logs each ping the client sends; websockets answers it itself."""

    async def pong(self, data=b""):
        data_bytes = data.encode() if isinstance(data, str) else data
        log("ping %s %s" % (self.path, data_bytes.decode("utf-8", "replace")))
        await super().pong(data)


async def command(ws, text):
    name, *args = text[4:].split(" ")
    if name == "close":
        await ws.close(int(args[0]), " ".join(args[1:]))
    elif name == "terminate":
        ws.transport.abort()
    elif name == "ping":
        payload = " ".join(args)
        await (await ws.ping(payload))
        await ws.send("pong:" + payload)
    elif name == "send":
        await ws.send(payloads.make(args[0], int(args[1])))
    elif name == "fragment":
        await ws.send(payloads.split(payloads.make(args[0], int(args[1])),
                                     int(args[2])))
    elif name == "stats":
        await ws.send("stats " + py_deflate.stats(ws))
    elif name == "params":
        await ws.send("params " + py_deflate.params(ws))
    elif name == "header":
        await ws.send("header %s %s" % (args[0], ws.request_headers.get(args[0])))
    else:
        await ws.send("unknown command " + name)


async def handler(ws, path):
    log("open %s %s" % (path, ws.subprotocol or "-"))
    log("offer %s %s" % (path, ws.request_headers.get(
        "Sec-WebSocket-Extensions", "-")))
    log("answer %s %s" % (path, ws.response_headers.get(
        "Sec-WebSocket-Extensions", "-")))
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("cmd:"):
                await command(ws, message)
            else:
                await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    log("stats %s %s" % (path, py_deflate.stats(ws)))
    log("close %s %s %s" % (path, ws.close_code, ws.close_reason))


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    loop.call_later(300, lambda: stop.done() or stop.set_result(None))
    context = None
    if option("--cert"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(option("--cert"), option("--key"))
    kwargs = dict(
        ssl=context, create_protocol=LoggingProtocol,
        subprotocols=["chat"], ping_interval=None,
        **py_deflate.options(option("--deflate"), "server"),
        # above the 16 MiB case unless a limit is asked for
        max_size=int(option("--max-payload") or 64 * 1024 * 1024))
    unix_path = option("--unix")
    if unix_path:
        async with websockets.unix_serve(handler, unix_path, **kwargs):
            log("UNIX %s" % unix_path)
            await stop
        return
    async with websockets.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        log("PORT %d" % server.sockets[0].getsockname()[1])
        await stop


if __name__ == "__main__":
    asyncio.run(main())
