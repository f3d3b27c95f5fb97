#!/usr/bin/env python3
"""Attackers and fakes for tests/test_trust.sh, speaking livemig's plaintext
wire format (docs/protocol.md; version 2) or raw bytes:

  fake-sender HOST PORT --image F --checksum HEX   a whole plaintext migration
              [--announce LEN] [--name N]           (or only HELLO + one REGION)
  fake-recv   [--mode echo|ack] [--cert --key --ca] a receiver that echoes, or
                                                    acknowledges everything
  proxy       HOST PORT --record DIR [--flip-offset N | --flip-record-len L]
              [--rate BYTES_PER_S]
  replay      HOST PORT DIR                         the recorded client bytes again
  junk        HOST PORT garbage|http|probe          one stranger connection
  trickle     HOST PORT --conns N [--tls]           slowloris: a byte every 2 s
  fdmig       LM N --recv ARGS --send ARGS          recv and send over socketpairs

Listening tools print their port on the first line of stdout. Everything
they observe goes to stderr, one line per event, prefixed with the tool.
"""
import argparse
import os
import random
import select
import shlex
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

MAGIC = b"LMIG"
VERSION = 2
K_HELLO, K_REGION, K_DATA, K_SYNC, K_COMPLETE, K_ERROR, K_ACK = range(1, 8)
FEAT_ROUND_ACK = 1
PAGE = 4096


def log(tool, msg):
    sys.stderr.write(f"{tool}: {msg}\n")
    sys.stderr.flush()


# ---- wire ---------------------------------------------------------------------

def frame(kind, body):
    return MAGIC + struct.pack(">BBHI", kind, 0, 0, len(body)) + body


def hello(session, channel, channels, region_count, features=FEAT_ROUND_ACK):
    body = struct.pack(">HH16sHHIHHIIQQQ", VERSION, 0, session, channel, channels, PAGE, 0, 0,
                       128, region_count, features, 0, 0)
    assert len(body) == 64
    return frame(K_HELLO, body)


def region(rid, length, name):
    return frame(K_REGION, struct.pack(">IIQHH", rid, 0, length, len(name), 0) + name)


def data(num, rid, rnd, normal, zero, payload):
    hdr = struct.pack(">QIIIIIIIHH", num, rid, rnd, len(normal) + len(zero), len(normal),
                      len(zero), 0, len(payload), 0, 0)
    offs = b"".join(struct.pack(">Q", o) for o in normal + zero)
    lens = b"".join(struct.pack(">I", PAGE) for _ in normal)
    return frame(K_DATA, hdr + offs + lens + payload)


def sync(rnd, packets):
    return frame(K_SYNC, struct.pack(">IIQ", rnd, 0, packets))


def complete(entries):
    body = struct.pack(">II", len(entries), 0)
    for rid, length, csum in entries:
        body += struct.pack(">IIQQ", rid, 0, length, csum)
    return frame(K_COMPLETE, body)


def ack(kind, features, session):
    return frame(K_ACK, struct.pack(">BBHiQ16s", kind, 0, 0, 0, features, session))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += got
    return buf


def read_frame(s):
    hdr = recv_exact(s, 12)
    if hdr[:4] != MAGIC:
        raise ValueError(f"not a livemig frame: {hdr!r}")
    kind, _, _, length = struct.unpack(">BBHI", hdr[4:])
    return kind, recv_exact(s, length)


def error_text(body):
    code, _, _, mlen, _ = struct.unpack(">iHHHH", body[:12])
    return f"ERROR {code}: {body[12:12 + mlen].decode('latin-1')}"


# ---- fake sender ------------------------------------------------------------------

def fake_sender(a):
    """A plaintext sender of its own pages, one channel: the hijack script.
    Exit 0 only when the receiver acknowledged COMPLETE."""
    tool = "fake-sender"
    img = open(a.image, "rb").read() if a.image else b""
    length = a.announce if a.announce is not None else len(img)
    name = (a.name or os.path.basename(a.image or "image")).encode()
    session = bytes([random.getrandbits(8) | 1]) + os.urandom(15)
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        s.sendall(hello(session, 0, 1, 1) + region(0, length, name))
        kind, body = read_frame(s)
        if kind == K_ERROR:
            log(tool, f"refused at the hello: {error_text(body)}")
            return 1
        if kind != K_ACK:
            log(tool, f"unexpected frame kind {kind} after the hello")
            return 2
        feats = struct.unpack(">Q", body[8:16])[0]
        log(tool, f"ACK(HELLO): the receiver took this connection as its sender")
        if a.announce is not None:
            return 3  # only an announcement was wanted
        n = 0
        for off in range(0, len(img), PAGE * 128):
            normal, zero, payload = [], [], b""
            for p in range(off, min(off + PAGE * 128, len(img)), PAGE):
                page = img[p:p + PAGE].ljust(PAGE, b"\0")
                if page.count(0) == PAGE:
                    zero.append(p)
                else:
                    normal.append(p)
                    payload += page
            s.sendall(data(n, 0, 0, normal, zero, payload))
            n += 1
        s.sendall(sync(0, n))
        if feats & FEAT_ROUND_ACK:
            kind, body = read_frame(s)
            if kind != K_ACK:
                log(tool, f"after SYNC: {error_text(body) if kind == K_ERROR else kind}")
                return 1
        s.sendall(complete([(0, len(img), int(a.checksum, 16))]))
        kind, body = read_frame(s)
        if kind == K_ACK and body[0] == K_COMPLETE:
            log(tool, "ACK(COMPLETE): the receiver verified and kept the fake pages")
            return 0
        log(tool, f"after COMPLETE: {error_text(body) if kind == K_ERROR else kind}")
        return 1
    except (OSError, EOFError, ValueError) as e:
        log(tool, f"failed: {e}")
        return 1


# ---- fake receiver -------------------------------------------------------------

class AckSession:
    """Acknowledges one session's handshake, every round and COMPLETE without
    keeping or checking anything: what a hijacked destination would do."""

    def __init__(self):
        self.cv = threading.Condition()
        self.channels = None
        self.joined = 0
        self.synced = {}

    def serve(self, s, tool):
        kind, body = read_frame(s)
        if kind != K_HELLO:
            raise ValueError(f"first frame kind {kind}")
        session = body[4:20]
        channel, channels = struct.unpack(">HH", body[20:24])
        regions = struct.unpack(">I", body[36:40])[0]
        feats = struct.unpack(">Q", body[40:48])[0] & FEAT_ROUND_ACK
        if channel == 0:
            for _ in range(regions):
                read_frame(s)
        with self.cv:
            self.channels = channels
            self.joined += 1
            self.cv.notify_all()
            self.cv.wait_for(lambda: self.joined >= self.channels, timeout=30)
        s.sendall(ack(K_HELLO, feats, session))
        log(tool, f"channel {channel}: ACK(HELLO) sent")
        rnd = 0
        while True:
            kind, body = read_frame(s)
            if kind == K_SYNC:
                with self.cv:
                    self.synced[rnd] = self.synced.get(rnd, 0) + 1
                    self.cv.notify_all()
                    if channel == 0 and feats:
                        self.cv.wait_for(lambda: self.synced[rnd] >= self.channels, timeout=30)
                if channel == 0 and feats:
                    s.sendall(ack(K_SYNC, rnd, session))
                rnd += 1
            elif kind == K_COMPLETE:
                s.sendall(ack(K_COMPLETE, 0, session))
                log(tool, "ACK(COMPLETE) sent without verifying anything")
            elif kind == K_ERROR:
                log(tool, f"channel {channel}: the sender sent {error_text(body)}")
                return


def fake_recv(a):
    tool = "fake-recv"
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(ls.getsockname()[1], flush=True)
    ctx = None
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(a.cert, a.key)
        ctx.load_verify_locations(a.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    sess = AckSession()

    def conn(s, i):
        try:
            if a.mode == "echo":
                while True:
                    got = s.recv(65536)
                    if not got:
                        break
                    s.sendall(got)
                log(tool, f"connection {i}: echoed until the peer closed")
                return
            if ctx:
                try:
                    s = ctx.wrap_socket(s, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    log(tool, f"connection {i}: TLS handshake failed: {e}")
                    return
                log(tool, f"connection {i}: TLS handshake completed")
            sess.serve(s, tool)
        except (OSError, EOFError, ValueError) as e:
            log(tool, f"connection {i}: ended: {e}")
        finally:
            s.close()

    i = 0
    while True:
        s, _ = ls.accept()
        threading.Thread(target=conn, args=(s, i), daemon=True).start()
        i += 1


# ---- recording and tampering proxy ---------------------------------------------

def proxy(a):
    tool = "proxy"
    os.makedirs(a.record, exist_ok=True)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(ls.getsockname()[1], flush=True)

    def pump(src, dst, path, i, c2s):
        flip = c2s and i == 0
        seen = 0
        rec = b""  # TLS record parser state (c2s of connection 0)
        done = False
        # Unbuffered: each chunk is in the file before it is forwarded, so a
        # proxy stopped right after its peers finished has recorded all of it.
        with open(path, "wb", buffering=0) as out:
            while True:
                try:
                    buf = bytearray(src.recv(65536))
                except OSError:
                    break
                if not buf:
                    break
                if flip and not done and a.flip_offset is not None and \
                        seen <= a.flip_offset < seen + len(buf):
                    buf[a.flip_offset - seen] ^= 0x01
                    done = True
                    log(tool, f"connection {i}: flipped client byte {a.flip_offset}")
                if flip and not done and a.flip_record_len is not None:
                    # Walk the TLS records (5-byte header); flip a byte in
                    # the first application-data record of that length.
                    rec += bytes(buf)
                    pos = seen - (len(rec) - len(buf))  # stream offset of rec[0]
                    while len(rec) >= 5 and not done:
                        typ, rlen = rec[0], struct.unpack(">H", rec[3:5])[0]
                        if typ == 23 and rlen == a.flip_record_len:
                            at = pos + 5 + rlen // 2
                            if seen <= at < seen + len(buf):
                                buf[at - seen] ^= 0x01
                                done = True
                                log(tool, f"connection {i}: flipped a byte of the "
                                          f"{rlen}-byte record at client offset {pos}")
                                break
                        if len(rec) < 5 + rlen:
                            break
                        pos += 5 + rlen
                        rec = rec[5 + rlen:]
                out.write(buf)
                seen += len(buf)
                if c2s and a.rate:
                    time.sleep(len(buf) / a.rate)
                try:
                    dst.sendall(buf)
                except OSError:
                    break
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass

    i = 0
    while True:
        c, _ = ls.accept()
        try:
            u = socket.create_connection((a.host, a.port))
        except OSError as e:
            log(tool, f"connection {i}: upstream: {e}")
            c.close()
            continue
        for src, dst, name, c2s in ((c, u, f"c2s.{i:02d}", True), (u, c, f"s2c.{i:02d}", False)):
            threading.Thread(target=pump, args=(src, dst, os.path.join(a.record, name), i, c2s),
                             daemon=True).start()
        i += 1


def replay(a):
    """Sends each recorded client stream again on its own connection, in
    the recorded order, and reads what comes back until the receiver closes."""
    tool = "replay"
    names = sorted(n for n in os.listdir(a.dir) if n.startswith("c2s."))
    if not names:
        log(tool, "nothing recorded")
        return 2
    for n in names:
        blob = open(os.path.join(a.dir, n), "rb").read()
        try:
            s = socket.create_connection((a.host, a.port), timeout=10)
            try:
                s.sendall(blob)
            except OSError as e:
                log(tool, f"{n}: sending {len(blob)} bytes: {e}")
            got = b""
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
            except OSError as e:
                log(tool, f"{n}: reading: {e}")
            log(tool, f"{n}: sent {len(blob)} bytes, got {len(got)} back, closed")
            s.close()
        except OSError as e:
            log(tool, f"{n}: {e}")
    return 0


# ---- strangers -------------------------------------------------------------------

def junk(a):
    tool = "junk"
    s = socket.create_connection((a.host, a.port), timeout=15)
    if a.kind == "probe":
        s.close()
        log(tool, "probe: connected and closed")
        return 0
    payload = b"GET / HTTP/1.0\r\n\r\n" if a.kind == "http" else \
        bytes(random.Random(7).getrandbits(8) for _ in range(300))
    s.sendall(payload)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except OSError as e:
        log(tool, f"{a.kind}: {e}")
    shown = got[:200]
    if got[:4] == MAGIC and len(got) >= 12 and got[4] == K_ERROR:
        shown = error_text(got[12:]).encode()
    log(tool, f"{a.kind}: sent {len(payload)} bytes, the receiver answered "
              f"{len(got)} bytes and closed: {shown!r}")
    return 0


def trickle(a):
    """Slowloris: conns connections, each sends one byte of a plausible
    first message (a HELLO, or a TLS ClientHello record) every interval.
    On SIGTERM or after duration s it prints how many the receiver closed."""
    tool = "trickle"
    if a.tls:  # handshake record of 512 bytes, ClientHello: the receiver waits for the rest
        msg = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]) + \
            os.urandom(500)
    else:
        msg = hello(b"\x01" + os.urandom(15), 0, 1, 1)
    socks, pos, closed, failed = [], {}, 0, 0
    for i in range(a.conns):
        s = socket.socket()
        s.setblocking(False)
        if a.sources > 1:
            s.bind((f"127.0.0.{2 + i % a.sources}", 0))
        try:
            s.connect((a.host, a.port))
        except BlockingIOError:
            pass
        except OSError as e:
            failed += 1
            log(tool, f"connection {i}: {e}")
            continue
        socks.append(s)
        pos[s] = 0
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    end = time.time() + a.duration
    nxt = time.time()
    while socks and not stop[0] and time.time() < end:
        if time.time() >= nxt:
            for s in list(socks):
                try:
                    s.send(msg[pos[s] % len(msg):pos[s] % len(msg) + 1])
                    pos[s] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    socks.remove(s)
                    closed += 1
                    s.close()
            nxt = time.time() + a.interval
        try:
            r, _, _ = select.select(socks, [], [], 0.2)
        except InterruptedError:
            continue
        for s in r:
            try:
                b = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            if not b:
                socks.remove(s)
                closed += 1
                s.close()
    print(f"trickle: {a.conns} connections, {closed} closed by the receiver, "
          f"{len(socks)} still open, {failed} failed to connect", flush=True)
    return 0


# ---- fd transport --------------------------------------------------------------

def fdmig(a):
    """recv --listen fd:A,B... and send --to fd:C,D... over socketpairs."""
    pairs = [socket.socketpair() for _ in range(a.channels)]
    rfds = [p[0].fileno() for p in pairs]
    sfds = [p[1].fileno() for p in pairs]
    rargs = [a.lm, "recv", "--listen", "fd:" + ",".join(map(str, rfds))] + shlex.split(a.recv)
    sargs = [a.lm, "send", "--to", "fd:" + ",".join(map(str, sfds)),
             "--channels", str(a.channels)] + shlex.split(a.send)
    with open(a.out + ".recv.out", "wb") as ro, open(a.out + ".recv.err", "wb") as re_, \
            open(a.out + ".send.out", "wb") as so, open(a.out + ".send.err", "wb") as se:
        rp = subprocess.Popen(rargs, pass_fds=rfds, stdout=ro, stderr=re_)
        sp = subprocess.Popen(sargs, pass_fds=sfds, stdout=so, stderr=se)
        for p in pairs:
            p[0].close()
            p[1].close()
        try:
            src = sp.wait(timeout=60)
            rrc = rp.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sp.kill()
            rp.kill()
            src, rrc = sp.wait(), rp.wait()
    print(f"{rrc} {src}", flush=True)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("fake-sender")
    q.add_argument("host"), q.add_argument("port", type=int)
    q.add_argument("--image"), q.add_argument("--checksum", default="0")
    q.add_argument("--announce", type=int), q.add_argument("--name")
    q.add_argument("--timeout", type=float, default=15)
    q = sub.add_parser("fake-recv")
    q.add_argument("--mode", choices=("echo", "ack"), default="ack")
    q.add_argument("--cert"), q.add_argument("--key"), q.add_argument("--ca")
    q = sub.add_parser("proxy")
    q.add_argument("host"), q.add_argument("port", type=int)
    q.add_argument("--record", required=True)
    q.add_argument("--flip-offset", type=int), q.add_argument("--flip-record-len", type=int)
    q.add_argument("--rate", type=float, help="client bytes per second, per connection")
    q = sub.add_parser("replay")
    q.add_argument("host"), q.add_argument("port", type=int), q.add_argument("dir")
    q = sub.add_parser("junk")
    q.add_argument("host"), q.add_argument("port", type=int)
    q.add_argument("kind", choices=("garbage", "http", "probe"))
    q = sub.add_parser("trickle")
    q.add_argument("host"), q.add_argument("port", type=int)
    q.add_argument("--conns", type=int, default=80)
    q.add_argument("--interval", type=float, default=2.0)
    q.add_argument("--duration", type=float, default=60)
    q.add_argument("--sources", type=int, default=1)
    q.add_argument("--tls", action="store_true")
    q = sub.add_parser("fdmig")
    q.add_argument("lm"), q.add_argument("channels", type=int)
    q.add_argument("--recv", default=""), q.add_argument("--send", default="")
    q.add_argument("--out", required=True)
    a = p.parse_args()
    return {"fake-sender": fake_sender, "fake-recv": fake_recv, "proxy": proxy,
            "replay": replay, "junk": junk, "trickle": trickle, "fdmig": fdmig}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
