#!/usr/bin/env python3
"""A scripted WebSocket peer that records what crosses the wire.

For specs about the RFC 6455 closing handshake: who sends the close frame, in
which order close frames and the TCP FIN travel, which side closes first (and
so holds TIME_WAIT). Python 3 standard library only; every wait is bounded.

    wire_peer.py server [--host 127.0.0.1] [--port 0] [--tls CERT KEY] SCRIPT
    wire_peer.py client --port N [--host 127.0.0.1] [--path /] [--tls-ca CA] SCRIPT
    (both also take --max-seconds S, default 20: the bound on the whole run,
    counted from the start, so it includes waiting for the connection)

server: listens, prints "PORT <n>", accepts one connection, answers the
upgrade with 101; its frames are unmasked. client: sends the upgrade (random
key), checks the 101 and Sec-WebSocket-Accept; its frames are masked. A failed
handshake prints the LOG line with an "error" event and exits 1. Both print
"READY" once the handshake is done, then run SCRIPT.

SCRIPT is steps separated by ";" (DATA/REASON take \\xHH escapes for raw bytes,
so "\\x3b" is a ";"):
  send_text:DATA  send_binary:DATA   one frame, FIN set
  send_close:CODE:REASON             "send_close::" sends an empty payload
  send_raw:HEX                       raw bytes (through TLS when TLS is on)
  expect_close:S   read until a close frame (returns at once if one already
                   came), FIN or reset, at most S seconds
  read:S / read_until_fin:S          read until FIN or reset, at most S seconds
  sleep:S          wait without reading
  shutdown         shutdown(SHUT_WR); with TLS a close_notify is sent first
  close            close(); no close_notify is sent, even with TLS
  reset            close with SO_LINGER {1, 0}: the kernel sends RST

Output, last line: LOG <json>, then exit 0. The json is
  {"role": "server"|"client", "local_port": n, "peer_port": n, "events": [...]}
each event has "t" (ms since the handshake completed, float) and "ev":
  frame    opcode, fin, rsv, masked, len, data (payload hex); close frames
           add reason_hex, and code when the payload is not empty
  fin      the peer's TCP FIN        reset   ECONNRESET/EPIPE on read/write
           (a send that fails after a fin, reset or our shutdown is an error)
  close_notify  the peer's TLS close_notify. TLS runs over memory BIOs, so a
           TLS close_notify and the TCP FIN are always told apart.
  sent     what: text|binary|close|raw (code for close frames with one)
  shutdown close_notify: bool        close   implicit: bool (true when the
           script ended with the socket open), rst: bool (the reset step)
  garbage  hex: bytes that are no frame (a partial frame left at FIN or at
           the end, an impossible length, bytes after close_notify)
  timeout  the --max-seconds bound ran out; the script stops there
  error    message: any exception (the run goes on with the next step)
"""
import argparse, base64, hashlib, json, os, re, socket, ssl, struct, sys, time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 1 << 26  # a longer declared length is reported as garbage


def accept_value(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def unescape(text):
    return re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  text.encode("utf-8"))


def parse_frame(buf):
    """Return (event, bytes consumed), None if incomplete, or "bad"."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack_from(">H", buf, 2)[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack_from(">Q", buf, 2)[0], 10
    if n > MAX_FRAME:
        return "bad"
    masked = bool(b1 & 0x80)
    if len(buf) < pos + (4 if masked else 0) + n:
        return None
    if masked:
        key, pos = buf[pos:pos + 4], pos + 4
    payload = bytes(buf[pos:pos + n])
    if masked:
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    ev = {"ev": "frame", "opcode": b0 & 0x0F, "fin": bool(b0 & 0x80),
          "rsv": (b0 >> 4) & 7, "masked": masked, "len": n, "data": payload.hex()}
    if ev["opcode"] == 8:
        if len(payload) >= 2:
            ev["code"] = struct.unpack(">H", payload[:2])[0]
        ev["reason_hex"] = payload[2:].hex()
    return ev, pos + n


class Peer:
    def __init__(self, role, max_seconds):
        self.role, self.events = role, []
        self.t0 = time.monotonic()
        self.deadline = self.t0 + max_seconds
        self.sock = self.tls = None
        self.buf = bytearray()  # plaintext not yet parsed into frames
        self.eof = self.closed = self.shut_wr = False
        self.got_close = self.tls_closed = self.sent_notify = False
        self.notify_seen = False  # a close_notify not yet recorded
        self.ports = (0, 0)

    def rec(self, ev, **kw):
        kw = {"t": round((time.monotonic() - self.t0) * 1000, 3), "ev": ev, **kw}
        self.events.append(kw)

    def left(self, seconds=None):
        rest = self.deadline - time.monotonic()
        return rest if seconds is None else min(seconds, rest)

    # -- transport: bytes in and out, TLS through memory BIOs --------------
    def start_tls(self, ctx, server_side):
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_side=server_side,
                                server_hostname=None if server_side else "localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush_tls()
                raw = self.raw_recv(self.left())
                if not raw:
                    raise ConnectionError("TLS handshake: peer went away or timed out")
                self.inc.write(raw)
        self.flush_tls()

    def flush_tls(self):
        data = self.out.read()
        if data:
            self.sock.settimeout(max(self.left(), 0.001))
            self.sock.sendall(data)

    def raw_recv(self, timeout):
        """Bytes, b"" at FIN, None when nothing came in time."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return None

    def note_notify(self):
        """Record a close_notify that tls_read_all saw; what follows is garbage."""
        if self.notify_seen:
            self.notify_seen = False
            self.rec("close_notify")
            rest = self.inc.read()
            if rest:
                self.rec("garbage", hex=rest.hex())

    def pull(self, timeout):
        """Wait up to timeout for bytes; False once the stream has ended."""
        if self.eof or self.closed:
            return False
        try:
            raw = self.raw_recv(timeout)
        except ConnectionResetError:
            self.eof = True
            self.rec("reset")
            return False
        if raw == b"":
            if self.buf:
                self.rec("garbage", hex=bytes(self.buf).hex())
                self.buf.clear()
            self.eof = True
            self.rec("fin")
            return False
        if raw and self.tls is None:
            self.feed(raw)
        elif raw and self.tls_closed:
            self.rec("garbage", hex=raw.hex())
        elif raw:
            self.inc.write(raw)
            try:
                self.feed(self.tls_read_all())
            except ssl.SSLError as e:  # a broken record: the rest is garbage
                self.tls_closed = True
                self.rec("error", message="tls: %s" % e)
            self.note_notify()
        return True

    def feed(self, data):
        self.buf += data
        while True:
            got = parse_frame(self.buf)
            if got is None:
                return
            if got == "bad":
                self.rec("garbage", hex=bytes(self.buf).hex())
                self.buf.clear()
                return
            ev, used = got
            del self.buf[:used]
            self.got_close = self.got_close or ev["opcode"] == 8
            self.rec(ev.pop("ev"), **ev)

    def send(self, data, what=None, code=None):
        """Write data; what (the kind of frame) is None for handshake bytes."""
        if self.closed:
            self.rec("error", message="send after close")
            return
        try:
            if self.tls is not None:
                self.tls.write(data)
                self.flush_tls()
            else:
                self.sock.settimeout(max(self.left(), 0.001))
                self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            if self.shut_wr or self.eof:  # not news: we or the peer ended it
                self.rec("error", message="send after end: %s" % e)
            else:
                self.rec("reset")
            return
        if what is not None:
            self.rec("sent", what=what, **({} if code is None else {"code": code}))

    def frame(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        mbit = 0x80 if self.role == "client" else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack(">Q", n)
        if not mbit:
            return head + payload
        key = os.urandom(4)
        return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))

    # -- opening handshake --------------------------------------------------
    def read_head(self):
        """Read up to the blank line; the bytes after it start the frames."""
        data = bytearray()
        while True:
            if self.tls is not None:
                data += self.tls_read_all()
            if b"\r\n\r\n" in data:
                break
            if len(data) > 65536:
                raise ValueError("handshake: header too long")
            raw = self.raw_recv(self.left())
            if not raw:
                raise ConnectionError("handshake: peer went away or timed out")
            if self.tls is None:
                data += raw
            else:
                self.inc.write(raw)
        head, _, rest = bytes(data).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return lines[0], headers, rest

    def tls_read_all(self):
        """Decrypt what has arrived; notify_seen is set at a close_notify."""
        data = bytearray()
        while not self.tls_closed:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            if not chunk:
                self.tls_closed = self.notify_seen = True
            data += chunk
        return data

    def serve_handshake(self):
        first, headers, rest = self.read_head()
        key = headers.get("sec-websocket-key")
        if not first.startswith("GET ") or not key:
            self.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            raise ValueError("handshake: not an upgrade request: %r" % first)
        self.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                   % accept_value(key.encode())).encode())
        return rest

    def client_handshake(self, host, port, path):
        key = base64.b64encode(os.urandom(16))
        self.send(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n"
                   % (path, host, port, key.decode())).encode())
        first, headers, rest = self.read_head()
        if first.split(" ")[1:2] != ["101"]:
            raise ValueError("handshake: status line %r" % first)
        if headers.get("sec-websocket-accept") != accept_value(key):
            raise ValueError("handshake: bad Sec-WebSocket-Accept")
        return rest

    # -- the script ---------------------------------------------------------
    def step(self, name, arg):
        if name in ("send_text", "send_binary"):
            self.send(self.frame(1 if name == "send_text" else 2, unescape(arg)),
                      name[5:])
        elif name == "send_close":
            code, _, reason = arg.partition(":")
            payload = (struct.pack(">H", int(code)) if code else b"") + unescape(reason)
            self.send(self.frame(8, payload), "close", int(code) if code else None)
        elif name == "send_raw":
            self.send(bytes.fromhex(arg), "raw")
        elif name in ("expect_close", "read", "read_until_fin"):
            end = time.monotonic() + self.left(float(arg))
            while not (name == "expect_close" and self.got_close):
                rest = end - time.monotonic()
                if rest <= 0 or not self.pull(rest):
                    break
        elif name == "sleep":
            time.sleep(max(self.left(float(arg)), 0))
        elif name == "shutdown":
            if self.tls is not None and not self.sent_notify:
                try:
                    self.tls.unwrap()
                except ssl.SSLWantReadError:
                    pass  # close_notify is out; we do not wait for the peer's
                self.sent_notify = True
                self.flush_tls()
            self.sock.shutdown(socket.SHUT_WR)
            self.shut_wr = True
            self.rec("shutdown", close_notify=self.sent_notify)
        elif name in ("close", "reset"):
            self.close(rst=name == "reset")
        else:
            raise ValueError("unknown step %r" % name)

    def close(self, rst=False, implicit=False):
        if self.closed:
            raise ValueError("socket already closed")
        if rst:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        self.sock.close()
        self.closed = True
        self.rec("close", implicit=implicit, rst=rst)

    def run(self, script):
        for item in filter(None, (s.strip() for s in script.split(";"))):
            if self.left() <= 0:
                break
            name, _, arg = item.partition(":")
            try:
                self.step(name, arg)
            except Exception as e:  # recorded; the next step still runs
                self.rec("error", message="%s: %s: %s" % (item, type(e).__name__, e))
        if self.left() <= 0:
            self.rec("timeout")
        if self.buf:
            self.rec("garbage", hex=bytes(self.buf).hex())
        if not self.closed:
            self.close(implicit=True)


def main():
    ap = argparse.ArgumentParser(description="scripted WebSocket wire peer")
    ap.add_argument("role", choices=("server", "client"))
    ap.add_argument("script")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--path", default="/")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--tls-ca")
    ap.add_argument("--max-seconds", type=float, default=20.0)
    a = ap.parse_args()
    p, status = Peer(a.role, a.max_seconds), 0
    try:
        if a.role == "server":
            lsock = socket.create_server((a.host, a.port))
            print("PORT %d" % lsock.getsockname()[1], flush=True)
            lsock.settimeout(max(p.left(), 0.001))
            p.sock, _ = lsock.accept()
            lsock.close()
        else:
            p.sock = socket.create_connection((a.host, a.port), timeout=p.left())
        # no Nagle: each step's bytes leave at once, so the timings are ours
        p.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p.ports = (p.sock.getsockname()[1], p.sock.getpeername()[1])
        if a.tls or a.tls_ca:
            if a.role == "server":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*a.tls)
            else:
                ctx = ssl.create_default_context(cafile=a.tls_ca)
            p.start_tls(ctx, a.role == "server")
        if a.role == "server":
            rest = p.serve_handshake()
        else:
            rest = p.client_handshake(a.host, a.port, a.path)
    except Exception as e:
        p.rec("error", message="%s: %s" % (type(e).__name__, e))
        status = 1
    if status == 0:
        p.t0 = time.monotonic()
        print("READY", flush=True)
        p.feed(rest)
        p.note_notify()
        p.run(a.script)
    elif p.sock is not None:
        p.sock.close()
    out = {"role": a.role, "local_port": p.ports[0], "peer_port": p.ports[1],
           "events": p.events}
    print("LOG " + json.dumps(out, separators=(",", ":")), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
