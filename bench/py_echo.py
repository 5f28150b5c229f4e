"""Echo server on Python `websockets`, a third peer for bench/echo_bench.sh.

Usage: /usr/bin/python3 bench/py_echo.py [port]   (0 or none: any free port)

Listens on 127.0.0.1 and prints "PORT <n>" once it is listening. str is
echoed as text and bytes as binary; no compression, no keepalive pings.
Written for websockets 10.x (Debian's python3-websockets), whose
websockets.serve is the asyncio server.
"""
import asyncio
import signal
import sys

import websockets


async def echo(ws, _path=None):
    # The load generator closes with echoes still in flight; sending one
    # after its close frame arrived is expected, not an error.
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(
        echo,
        "127.0.0.1",
        port,
        compression=None,
        max_size=4 * 1024 * 1024,  # the 1 MiB case plus a wide margin
        ping_interval=None,
    ) as server:
        print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
