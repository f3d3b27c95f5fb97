#!/usr/bin/env bash
# End-to-end checks of the livemig CLI: usage errors, migrations of realistic
# images with 1 and 8 channels (JSON statistics of both sides), empty and
# odd-sized images, that the destination file is replaced only when a
# migration succeeds, and --device-state on both sides, one or neither.
# Usage: tests/test_cli.sh path/to/livemig path/to/lm-mkimage
set -euo pipefail

lm=${1:?usage: $0 path/to/livemig path/to/lm-mkimage}
mkimage=${2:?usage: $0 path/to/livemig path/to/lm-mkimage}
[ -x "$lm" ] || { echo "FAIL: $lm is not executable"; exit 1; }
[ -x "$mkimage" ] || { echo "FAIL: $mkimage is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }

name=test_cli
. "$(dirname "$0")/shell_harness.sh"

# listen_port PID: the TCP port PID listens on (from /proc, so it also works
# with --json, where recv prints no "listening" line). Waits up to 10 s.
listen_port() {
	python3 - "$1" <<'EOF'
import os, sys, time
pid = sys.argv[1]
deadline = time.time() + 10
while time.time() < deadline:
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        for table in ("tcp", "tcp6"):
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and p[9] in inodes:  # LISTEN
                        print(int(p[1].rsplit(":", 1)[1], 16))
                        sys.exit(0)
    except (FileNotFoundError, ProcessLookupError):
        sys.exit(1)  # the process is gone
    time.sleep(0.01)
sys.exit(1)
EOF
}

# wait_exit PID SECONDS: waits for a background job, killing it after
# SECONDS; sets rc to its exit status (137 when killed). Not for $(...):
# only this shell can wait for its jobs.
wait_exit() {
	local pid=$1 end=$((SECONDS + $2))
	rc=0
	while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "  (pid $pid still running after $2 s: killed)" >&2
		kill -9 "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	forget_pid "$pid"
}

# start_recv IMAGE NAME [recv options...]: starts a receiver on an ephemeral
# port; sets rpid and port. Output in $tmp/NAME.recv.{out,err}.
start_recv() {
	local image=$1 name=$2
	shift 2
	"$lm" recv --listen 127.0.0.1:0 --image "$image" "$@" \
		>"$tmp/$name.recv.out" 2>"$tmp/$name.recv.err" &
	rpid=$!
	bg_pids+=("$rpid")
	port=$(listen_port "$rpid") || port=
}

# migrate SRC DST NAME CHANNELS: one migration with --json on both sides.
# Sets send_rc and recv_rc; JSON in $tmp/NAME.{send,recv}.out.
migrate() {
	local src=$1 dst=$2 name=$3 ch=$4
	shift 4 # the rest: extra `livemig send` options
	send_rc=-1
	recv_rc=-1
	start_recv "$dst" "$name" --json --timeout 10 --accept-timeout 10
	if [ -z "$port" ]; then
		echo "  recv did not start listening: $(cat "$tmp/$name.recv.err")"
		wait_exit "$rpid" 5
		recv_rc=$rc
		return 0
	fi
	send_rc=0
	timeout -k 5 60 "$lm" send --image "$src" --to "127.0.0.1:$port" --channels "$ch" \
		--json --timeout 10 "$@" >"$tmp/$name.send.out" 2>"$tmp/$name.send.err" || send_rc=$?
	wait_exit "$rpid" 30
	recv_rc=$rc
	if [ "$send_rc" != 0 ] || [ "$recv_rc" != 0 ]; then
		echo "  send rc=$send_rc: $(tail -n 1 "$tmp/$name.send.err")"
		echo "  recv rc=$recv_rc: $(tail -n 1 "$tmp/$name.recv.err")"
	fi
}


same_checksum() { # same_checksum A B: `livemig checksum` agrees
	local a b
	a=$("$lm" checksum "$1" | cut -d' ' -f1)
	b=$("$lm" checksum "$2" | cut -d' ' -f1)
	echo "  checksum $a / $b"
	[ -n "$a" ] && [ "$a" = "$b" ]
}

# check_stats NAME SIZE CHANNELS: the JSON lines of both sides.
check_stats() {
	python3 - "$tmp/$1.send.out" "$tmp/$1.recv.out" "$2" "$3" <<'EOF'
import json, sys

def load(path, side):
    lines = [l for l in open(path) if l.strip()]
    objs = [json.loads(l) for l in lines]
    objs = [o for o in objs if o.get("side") == side]
    if len(objs) != 1:
        sys.exit(f"  {path}: expected one {side} JSON line, got {len(objs)} in {lines!r}")
    return objs[0]

snd = load(sys.argv[1], "sender")
rcv = load(sys.argv[2], "receiver")
size, channels = int(sys.argv[3]), int(sys.argv[4])
pages = (size + 4095) // 4096
bad = []
for name, st in (("sender", snd), ("receiver", rcv)):
    print(f"  {name}: status {st['status']} channels {st['channels']} normal {st['normal']} "
          f"duplicate {st['duplicate']} transferred {st['transferred']} "
          f"normal_bytes {st['normal_bytes']} throughput {st['throughput_mbps']} Mbit/s")
    if st["status"] != "completed":
        bad.append(f"{name} status {st['status']}")
    sent = st["duplicate"] + st["normal"] + st["ref_pages"] + st["delta_pages"]
    if sent != pages:
        bad.append(f"{name} duplicate + normal + ref + delta = {sent}, want {pages}")
    if not st["transferred"] > st["normal_bytes"]:
        bad.append(f"{name} transferred {st['transferred']} <= normal_bytes {st['normal_bytes']}")
    if not st["throughput_mbps"] > 0:
        bad.append(f"{name} throughput_mbps {st['throughput_mbps']}")
    if st["channels"] != channels:
        bad.append(f"{name} channels {st['channels']}, want {channels}")
    if st["total_ram"] != size:
        bad.append(f"{name} total_ram {st['total_ram']}, want {size}")
for k in ("normal", "duplicate", "normal_bytes", "packets", "ref_pages", "delta_pages"):
    if snd[k] != rcv[k]:
        bad.append(f"{k}: sender {snd[k]}, receiver {rcv[k]}")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
}

# ---- usage errors --------------------------------------------------------

echo "== usage errors exit 2"
img_dummy="$tmp/dummy.img"
: >"$img_dummy"
expect_usage() { # expect_usage DESCRIPTION ARGS...
	local what=$1 rc=0
	shift
	timeout 10 "$lm" "$@" >"$tmp/usage.out" 2>"$tmp/usage.err" || rc=$?
	if [ "$rc" -eq 2 ] && [ -s "$tmp/usage.err" ]; then
		pass "$what: exit 2 ($(head -n 1 "$tmp/usage.err"))"
	else
		fail "$what: exit $rc, stderr: $(head -n 1 "$tmp/usage.err")"
	fi
}
expect_usage "no arguments"
expect_usage "unknown command" frobnicate
expect_usage "send --channels 0" send --image "$img_dummy" --to 127.0.0.1:1 --channels 0
expect_usage "send --channels 65" send --image "$img_dummy" --to 127.0.0.1:1 --channels 65
expect_usage "send --codec bogus" send --image "$img_dummy" --to 127.0.0.1:1 --codec bogus
expect_usage "send without --to" send --image "$img_dummy"
check "send without --to: the message names the command once" \
	not grep -q "send send" "$tmp/usage.err"
expect_usage "recv without --image" recv --listen 127.0.0.1:0
check "recv without --image: the message names the command once" \
	not grep -q "recv recv" "$tmp/usage.err"
expect_usage "recv --timeout 0" recv --listen 127.0.0.1:0 --image "$tmp/x.img" --timeout 0
expect_usage "checksum without a file" checksum
# SIZE: the demo's grammar (tools/cli_num.c); 0 and a bad suffix are refused.
expect_usage "recv --max-size 0" recv --listen 127.0.0.1:0 --image "$tmp/x.img" --max-size 0
expect_usage "recv --max-size 1X" recv --listen 127.0.0.1:0 --image "$tmp/x.img" --max-size 1X
expect_usage "recv --max-size -1" recv --listen 127.0.0.1:0 --image "$tmp/x.img" --max-size -1
expect_usage "send --channels +2" send --image "$img_dummy" --to 127.0.0.1:1 --channels +2
expect_usage "send --read-ahead 1MiB (under 2M)" send --image "$img_dummy" --to 127.0.0.1:1 \
	--read-ahead 1MiB
check "no image created by the usage errors" test ! -e "$tmp/x.img"

# ---- realistic image, 1 and 8 channels -------------------------------------

echo "== 64 MiB realistic image"
size=$((64 * 1024 * 1024))
if ! "$mkimage" --size 64M --out "$tmp/src.img" --seed 7 >/dev/null; then
	fail "lm-mkimage --size 64M exited non-zero: cannot go on"
	echo "test_cli: $passed passed, $failed failed"
	exit 1
fi
check "lm-mkimage made a 64 MiB image" test "$(stat -c %s "$tmp/src.img")" -eq "$size"

for ch in 1 8; do
	echo "== migrate with $ch channel(s), --json"
	mkdir -p "$tmp/out$ch"
	dst="$tmp/out$ch/dst.img"
	# codec none: these checks count bytes as they travel raw (the
	# default, codec auto, is checked below).
	migrate "$tmp/src.img" "$dst" "m$ch" "$ch" --codec none
	check "$ch ch: send exits 0" test "$send_rc" = 0
	check "$ch ch: recv exits 0" test "$recv_rc" = 0
	check "$ch ch: JSON statistics of both sides" check_stats "m$ch" "$size" "$ch"
	check "$ch ch: image identical (cmp)" cmp "$tmp/src.img" "$dst"
	check "$ch ch: livemig checksum equal" same_checksum "$tmp/src.img" "$dst"
	check "$ch ch: no temp file left" no_temp_files "$tmp/out$ch"
	rm -f "$dst"
done

# check_codec NAME CODEC: both sides name the codec, pages shrank, and the
# engine counters are in the JSON and agree with each other.
check_codec() {
	python3 - "$tmp/$1.send.out" "$tmp/$1.recv.out" "$2" <<'EOF'
import json, sys
snd = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
rcv = [json.loads(l) for l in open(sys.argv[2]) if l.strip()][-1]
codec, bad = sys.argv[3], []
for name, st in (("sender", snd), ("receiver", rcv)):
    eng = {e["name"]: e for e in st.get("engines", [])}
    print(f"  {name}: codec {st['codec']} ratio {st['compression_ratio']} "
          f"payload {st['payload_bytes']} engines {sorted(eng)}")
    if st["codec"] != codec:
        bad.append(f"{name} codec {st['codec']}")
    if not st["compression_ratio"] > 1.2:
        bad.append(f"{name} compression_ratio {st['compression_ratio']}")
    if not eng or not any(e["jobs"] > 0 for e in eng.values()):
        bad.append(f"{name} has no engine with jobs")
    if not st["transferred"] < st["normal_bytes"]:
        bad.append(f"{name} transferred {st['transferred']} not below normal_bytes")
if snd["payload_bytes"] != rcv["payload_bytes"]:
    bad.append(f"payload_bytes: sender {snd['payload_bytes']}, receiver {rcv['payload_bytes']}")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
}

# check_auto NAME: the sender ran codec auto; its codec mix (per codec:
# packets, page bytes in, payload bytes out) adds up to what it sent, and
# the receiver's page counts match.
check_auto() {
	python3 - "$tmp/$1.send.out" "$tmp/$1.recv.out" <<'EOF'
import json, sys
def load(path, side):
    objs = [json.loads(l) for l in open(path) if l.startswith("{")]
    return [o for o in objs if o.get("side") == side][0]
snd, rcv, bad = load(sys.argv[1], "sender"), load(sys.argv[2], "receiver"), []
mix = snd.get("codec_mix", {})
print(f"  sender: codec {snd['codec']} mix {mix} auto {snd.get('auto')}")
if snd["codec"] != "auto":
    bad.append(f"sender codec {snd['codec']}")
if not mix or set(mix) - {"none", "lz4", "zstd", "deflate"}:
    bad.append(f"codec_mix {mix}")
if sum(m["packets"] for m in mix.values()) != snd["packets"]:
    bad.append(f"codec_mix packets do not add up to {snd['packets']}")
if sum(m["bytes_out"] for m in mix.values()) != snd["payload_bytes"]:
    bad.append(f"codec_mix bytes_out do not add up to {snd['payload_bytes']}")
if "auto" not in snd:
    bad.append("no auto decision in the JSON")
for k in ("normal", "duplicate", "payload_bytes", "packets"):
    if snd[k] != rcv[k]:
        bad.append(f"{k}: sender {snd[k]}, receiver {rcv[k]}")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
}

echo "== migrate with the default codec (auto), --json"
mkdir -p "$tmp/cauto"
migrate "$tmp/src.img" "$tmp/cauto/dst.img" cauto 2
check "auto: send exits 0" test "$send_rc" = 0
check "auto: recv exits 0" test "$recv_rc" = 0
check "auto: codec auto and its mix in the JSON" check_auto cauto
check "auto: image identical (cmp)" cmp "$tmp/src.img" "$tmp/cauto/dst.img"
rm -f "$tmp/cauto/dst.img"

for codec in deflate zstd lz4 zlib; do
	echo "== migrate with --codec $codec, --json"
	mkdir -p "$tmp/c$codec"
	dst="$tmp/c$codec/dst.img"
	migrate "$tmp/src.img" "$dst" "c$codec" 2 --codec "$codec" --accel off
	check "$codec: send exits 0" test "$send_rc" = 0
	check "$codec: recv exits 0" test "$recv_rc" = 0
	check "$codec: codec, ratio and engine counters in the JSON" check_codec "c$codec" "$codec"
	check "$codec: image identical (cmp)" cmp "$tmp/src.img" "$dst"
	rm -f "$dst"
done

# ---- edge sizes ------------------------------------------------------------

echo "== empty image"
mkdir -p "$tmp/empty"
: >"$tmp/empty.img"
migrate "$tmp/empty.img" "$tmp/empty/dst.img" empty 2
check "empty: send and recv exit 0" test "$send_rc/$recv_rc" = 0/0
check "empty: destination exists and is empty" \
	test -f "$tmp/empty/dst.img" -a ! -s "$tmp/empty/dst.img"
check "empty: JSON statistics of both sides" check_stats empty 0 2
check "empty: no temp file left" no_temp_files "$tmp/empty"

echo "== 1000000-byte image (not a page multiple)"
mkdir -p "$tmp/odd"
python3 - "$tmp/odd.img" <<'EOF'
import random, sys
r = random.Random(5)
data = bytearray(r.randbytes(1000000))
data[200000:400000] = bytes(200000)   # some zero pages
data[-3:] = b"end"                   # the partial last page carries data
open(sys.argv[1], "wb").write(data)
EOF
migrate "$tmp/odd.img" "$tmp/odd/dst.img" odd 3
check "odd: send and recv exit 0" test "$send_rc/$recv_rc" = 0/0
check "odd: size is 1000000" test "$(stat -c %s "$tmp/odd/dst.img" 2>/dev/null || echo 0)" -eq 1000000
check "odd: byte-exact (cmp)" cmp "$tmp/odd.img" "$tmp/odd/dst.img"
check "odd: livemig checksum equal" same_checksum "$tmp/odd.img" "$tmp/odd/dst.img"
check "odd: JSON statistics of both sides" check_stats odd 1000000 3
check "odd: no temp file left" no_temp_files "$tmp/odd"

# ---- an existing destination is replaced only on success -------------------

echo "== existing destination: kept on failure, replaced on success"
mkdir -p "$tmp/keep"
dst="$tmp/keep/vm.img"
python3 -c 'import sys; open(sys.argv[1], "wb").write(b"old image\n" * 100000)' "$dst"
cp "$dst" "$tmp/keep.orig"

# 1. Nobody connects before --accept-timeout.
start_recv "$dst" acc --accept-timeout 1 --timeout 5
t0=$SECONDS
wait_exit "$rpid" 15
check "accept timeout: recv exits non-zero ($rc: $(tail -n 1 "$tmp/acc.recv.err"))" \
	test "$rc" != 0 -a "$rc" != 137
check "accept timeout: recv gave up within 5 s" test $((SECONDS - t0)) -le 5
check "accept timeout: error mentions the timeout" grep -qi "timeout" "$tmp/acc.recv.err"
check "accept timeout: old file untouched" cmp "$dst" "$tmp/keep.orig"
check "accept timeout: no temp file left" no_temp_files "$tmp/keep"

# 1b. A sender to a port where such a receiver already gave up.
start_recv "$dst" gone --accept-timeout 1 --timeout 5
gone_port=$port
wait_exit "$rpid" 15
rc2=0
timeout -k 5 30 "$lm" send --image "$tmp/src.img" --to "127.0.0.1:$gone_port" --timeout 3 \
	>/dev/null 2>"$tmp/gone.send.err" || rc2=$?
check "receiver gone: send exits non-zero ($rc2: $(tail -n 1 "$tmp/gone.send.err"))" \
	test "$rc2" != 0 -a "$rc2" != 124 -a "$rc2" != 137
check "receiver gone: old file untouched" cmp "$dst" "$tmp/keep.orig"

# 2. Garbage instead of a hello.
start_recv "$dst" junk --accept-timeout 2 --timeout 5
if [ -n "$port" ]; then
	python3 - "$port" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET / HTTP/1.0\r\n\r\n" + bytes(100))
time.sleep(0.5)
s.close()
EOF
fi
wait_exit "$rpid" 15
check "junk sender: recv exits non-zero ($rc: $(tail -n 1 "$tmp/junk.recv.err"))" \
	test "$rc" != 0 -a "$rc" != 137
check "junk sender: the error names frame.magic" grep -q "frame.magic" "$tmp/junk.recv.err"
check "junk sender: old file untouched" cmp "$dst" "$tmp/keep.orig"
check "junk sender: no temp file left" no_temp_files "$tmp/keep"

# 3. The sender is killed mid-transfer. A relay between the two passes the
#    first MiB of each channel and holds back the rest (reading it, so the
#    sender sends everything and waits for the verdict); when the sender dies
#    the relay closes its side, as the sender's host would.
cat >"$tmp/relay.py" <<'EOF'
import socket, sys, threading
up, limit = int(sys.argv[1]), 1 << 20
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print(ls.getsockname()[1], flush=True)

def close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def pump(a, b, limit):
    sent = 0
    try:
        while True:
            d = a.recv(1 << 16)
            if not d:
                break
            if limit is None or sent < limit:
                n = len(d) if limit is None else min(len(d), limit - sent)
                b.sendall(d[:n])
                sent += n
    except OSError:
        pass
    close(a, b)

while True:
    c, _ = ls.accept()
    s = socket.create_connection(("127.0.0.1", up))
    threading.Thread(target=pump, args=(c, s, limit), daemon=True).start()
    threading.Thread(target=pump, args=(s, c, None), daemon=True).start()
EOF
start_recv "$dst" killed --accept-timeout 10 --timeout 10
python3 "$tmp/relay.py" "$port" >"$tmp/relay.port" 2>"$tmp/relay.err" &
relay=$!
bg_pids+=("$relay")
for _ in $(seq 100); do [ -s "$tmp/relay.port" ] && break; sleep 0.05; done
"$lm" send --image "$tmp/src.img" --to "127.0.0.1:$(cat "$tmp/relay.port")" --channels 2 \
	--timeout 20 >/dev/null 2>"$tmp/killed.send.err" &
spid=$!
bg_pids+=("$spid")
sleep 1
check "killed sender: sender still waiting for the verdict after 1 s" kill -0 "$spid"
check "killed sender: recv still running after 1 s" kill -0 "$rpid"
check "killed sender: temp file exists while receiving" \
	test -n "$(find "$tmp/keep" -name '.vm.img.livemig-*')"
kill -9 "$spid" 2>/dev/null || true
wait "$spid" 2>/dev/null || true # at once: no "Killed" job notice
forget_pid "$spid"
t0=$SECONDS
wait_exit "$rpid" 20
check "killed sender: recv exits non-zero ($rc: $(tail -n 1 "$tmp/killed.recv.err"))" \
	test "$rc" != 0 -a "$rc" != 137
check "killed sender: recv gave up within 5 s" test $((SECONDS - t0)) -le 5
check "killed sender: the error names a channel" grep -q "channel" "$tmp/killed.recv.err"
check "killed sender: old file untouched" cmp "$dst" "$tmp/keep.orig"
check "killed sender: no temp file left" no_temp_files "$tmp/keep"
kill "$relay" 2>/dev/null || true
wait "$relay" 2>/dev/null || true
forget_pid "$relay"

# 3b. The same over TLS: the receiver's ERROR frame on the dead channel must
#     fail, not spin (a write that OpenSSL fails at once used to come back
#     as 0 bytes written, forever, at full CPU).
bash "$(dirname "$0")/tls_certs.sh" "$tmp/pki" 127.0.0.1
start_recv "$dst" tkilled --accept-timeout 10 --timeout 10 --tls-cert "$tmp/pki/server-cert.pem" \
	--tls-key "$tmp/pki/server-key.pem" --tls-ca "$tmp/pki/ca-cert.pem"
: >"$tmp/relay.port"
python3 "$tmp/relay.py" "$port" >"$tmp/relay.port" 2>"$tmp/relay.err" &
relay=$!
bg_pids+=("$relay")
for _ in $(seq 100); do [ -s "$tmp/relay.port" ] && break; sleep 0.05; done
"$lm" send --image "$tmp/src.img" --to "127.0.0.1:$(cat "$tmp/relay.port")" --channels 2 \
	--tls-peer-name 127.0.0.1 --tls-cert "$tmp/pki/client-cert.pem" \
	--tls-key "$tmp/pki/client-key.pem" --tls-ca "$tmp/pki/ca-cert.pem" \
	--timeout 20 >/dev/null 2>"$tmp/tkilled.send.err" &
spid=$!
bg_pids+=("$spid")
sleep 1
check "killed TLS sender: recv still running after 1 s" kill -0 "$rpid"
kill -9 "$spid" 2>/dev/null || true
wait "$spid" 2>/dev/null || true
forget_pid "$spid"
t0=$SECONDS
wait_exit "$rpid" 20
check "killed TLS sender: recv exits non-zero ($rc: $(tail -n 1 "$tmp/tkilled.recv.err"))" \
	test "$rc" != 0 -a "$rc" != 137
check "killed TLS sender: recv gave up within 5 s" test $((SECONDS - t0)) -le 5
check "killed TLS sender: old file untouched" cmp "$dst" "$tmp/keep.orig"
check "killed TLS sender: no temp file left" no_temp_files "$tmp/keep"
kill "$relay" 2>/dev/null || true
wait "$relay" 2>/dev/null || true
forget_pid "$relay"

# 4. A successful migration replaces the file.
migrate "$tmp/odd.img" "$dst" replace 2
check "replace: send and recv exit 0" test "$send_rc/$recv_rc" = 0/0
check "replace: destination now equals the source" cmp "$tmp/odd.img" "$dst"
check "replace: no temp file left" no_temp_files "$tmp/keep"

# ---- device state ----------------------------------------------------------
# --device-state FILE on both sides: send reads it, recv writes it into
# place with the image once verified; given to one side only, both fail
# and recv leaves neither file behind.
mkdir -p "$tmp/dev"
head -c 3000123 /dev/urandom >"$tmp/dev/state.bin"
: >"$tmp/dev/empty.bin"
# devstate_run NAME SEND_STATE RECV_STATE: a migration of odd.img into
# dev/NAME.img, either state "" for none; sets send_rc and recv_rc.
# ds_send_max and ds_recv_max, when set, are the sides' --device-state-max.
devstate_run() {
	local name=$1 sst=$2 rst=$3
	start_recv "$tmp/dev/$name.img" "$name" --json --timeout 10 --accept-timeout 2 \
		${rst:+--device-state "$rst"} ${ds_recv_max:+--device-state-max "$ds_recv_max"}
	send_rc=0
	timeout -k 5 60 "$lm" send --image "$tmp/odd.img" --to "127.0.0.1:${port:-1}" --json \
		--timeout 10 ${sst:+--device-state "$sst"} \
		${ds_send_max:+--device-state-max "$ds_send_max"} \
		>"$tmp/$name.send.out" 2>"$tmp/$name.send.err" || send_rc=$?
	wait_exit "$rpid" 20
	recv_rc=$rc
}
json_field() { # json_field FILE FIELD: FIELD of the JSON line in FILE
	python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read())[sys.argv[2]])' "$1" "$2"
}
for st in state empty; do
	devstate_run "ds-$st" "$tmp/dev/$st.bin" "$tmp/dev/$st.out"
	check "device state ($st): send and recv exit 0" test "$send_rc/$recv_rc" = 0/0
	check "device state ($st): what recv wrote is what send read" \
		cmp "$tmp/dev/$st.bin" "$tmp/dev/$st.out"
	check "device state ($st): the image too" cmp "$tmp/odd.img" "$tmp/dev/ds-$st.img"
	size=$(stat -c %s "$tmp/dev/$st.bin")
	check "device state ($st): both sides count $size bytes" \
		test "$(json_field "$tmp/ds-$st.send.out" device_state_bytes)/$(json_field \
			"$tmp/ds-$st.recv.out" device_state_bytes)" = "$size/$size"
done
check "device state: no temp file left" no_temp_files "$tmp/dev"
devstate_run ds-norecv "$tmp/dev/state.bin" ""
check "device state sent, recv takes none: both fail ($send_rc/$recv_rc)" \
	failed_cleanly "$send_rc" "$recv_rc"
check "device state sent, recv takes none: send says why" \
	grep -q "this receiver takes no device state" "$tmp/ds-norecv.send.err"
check "device state sent, recv takes none: no image" test ! -e "$tmp/dev/ds-norecv.img"
# recv went on waiting for a sender (anyone may connect in plaintext) and
# its accept timeout names what it refused, not "no sender" alone.
check "device state sent, recv takes none: recv's timeout names the refusal" \
	grep -q "no sender connected before the accept timeout ([0-9]* refused, the last 127.0.0.1:[0-9]*: hello.required has devstate: this receiver takes no device state" \
	"$tmp/ds-norecv.recv.err"
# A stranger still in its handshake when that timeout fails the wait
# learns that the session ended, not whom recv refused and why.
start_recv "$tmp/dev/held.img" held --accept-timeout 2
python3 - "${port:-1}" >"$tmp/held.peer" 2>&1 <<'EOF' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(15)
got = b""
try:
    while (b := s.recv(4096)):
        got += b
except OSError:
    pass
print(got.decode("ascii", "replace"))
EOF
held_pid=$!
bg_pids+=("$held_pid")
timeout -k 5 30 "$lm" send --image "$tmp/odd.img" --to "127.0.0.1:${port:-1}" \
	--device-state "$tmp/dev/state.bin" >/dev/null 2>&1 || true
wait_exit "$rpid" 20
wait_exit "$held_pid" 20
check "accept timeout after a refusal: recv names it" \
	grep -q "[0-9]* refused, the last 127.0.0.1:[0-9]*: hello.required has devstate" "$tmp/held.recv.err"
check "accept timeout after a refusal: the held stranger learns the session ended" \
	grep -q "the session ended" "$tmp/held.peer"
check "accept timeout after a refusal: ... not whom recv refused nor why" \
	not grep -q "hello.required\|127.0.0.1" "$tmp/held.peer"
devstate_run ds-nosend "" "$tmp/dev/state.out" # it exists: a failure leaves it
check "device state wanted, none sent: both fail ($send_rc/$recv_rc)" \
	failed_cleanly "$send_rc" "$recv_rc"
check "device state wanted, none sent: recv says why" \
	grep -q "needs the sender's device state" "$tmp/ds-nosend.recv.err"
check "device state wanted, none sent: the existing state untouched, no image" \
	eval 'cmp "$tmp/dev/state.bin" "$tmp/dev/state.out" && test ! -e "$tmp/dev/ds-nosend.img"'
devstate_run ds-replace "$tmp/dev/empty.bin" "$tmp/dev/state.out" # a success replaces it
check "device state replaced: migrated ($send_rc/$recv_rc)" test "$send_rc/$recv_rc" = 0/0
check "device state replaced: now the new one" cmp "$tmp/dev/empty.bin" "$tmp/dev/state.out"
check "device state: still no temp file left" no_temp_files "$tmp/dev"
devstate_run ds-readerr "$tmp/dev" "$tmp/dev/readerr.out" # a directory: read(2) fails
check "device state unreadable: both fail ($send_rc/$recv_rc)" \
	failed_cleanly "$send_rc" "$recv_rc"
check "device state unreadable: send names the file, where and why" \
	grep -q "dev: reading the device state at byte 0: Is a directory" "$tmp/ds-readerr.send.err"
check "device state unreadable: no state, no image" \
	test ! -e "$tmp/dev/readerr.out" -a ! -e "$tmp/dev/ds-readerr.img"
check "device state unreadable: no temp file left" no_temp_files "$tmp/dev"
rc=0
"$lm" recv --listen 127.0.0.1:0 --image "$tmp/dev/x.img" --device-state "$tmp/dev/x.img" \
	>/dev/null 2>"$tmp/ds-same.err" || rc=$?
check "device state and image the same file: a usage error ($rc)" test "$rc" = 2
check "device state and image the same file: said" grep -q "name the same file" "$tmp/ds-same.err"
rc=0
"$lm" send --image "$tmp/odd.img" --to 127.0.0.1:1 --device-state "$tmp/dev/missing" \
	>/dev/null 2>"$tmp/ds-missing.err" || rc=$?
check "device state file missing: send exits 1 before connecting ($rc)" test "$rc" = 1
check "device state file missing: named" \
	grep -q "dev/missing: cannot open the device state: No such file" "$tmp/ds-missing.err"

# --device-state-max: the state's exact size passes on both sides; one byte
# less fails both, whichever side counts it: send before it connects for a
# file, the library's count for a pipe (no size known), recv's own count.
ds_size=$(stat -c %s "$tmp/dev/state.bin")
ds_send_max=$ds_size ds_recv_max=$ds_size devstate_run ds-max "$tmp/dev/state.bin" "$tmp/dev/max.out"
check "device state at both sides' --device-state-max: migrated ($send_rc/$recv_rc)" \
	test "$send_rc/$recv_rc" = 0/0
check "device state at both sides' --device-state-max: whole" cmp "$tmp/dev/state.bin" "$tmp/dev/max.out"
rc=0
"$lm" send --image "$tmp/odd.img" --to 127.0.0.1:1 --device-state "$tmp/dev/state.bin" \
	--device-state-max $((ds_size - 1)) >/dev/null 2>"$tmp/ds-bigfile.err" || rc=$?
check "device state file above send's max: exits 1 before connecting ($rc)" test "$rc" = 1
check "device state file above send's max: both sizes named" \
	grep -q "state.bin: the device state is $ds_size bytes, above --device-state-max $((ds_size - 1))" \
	"$tmp/ds-bigfile.err"
ds_send_max=$((ds_size - 1)) devstate_run ds-bigpipe <(cat "$tmp/dev/state.bin") "$tmp/dev/bigpipe.out"
check "device state pipe above send's max: both fail ($send_rc/$recv_rc)" \
	failed_cleanly "$send_rc" "$recv_rc"
check "device state pipe above send's max: send says so" \
	grep -q "wrote more than device_state_max ($((ds_size - 1)) bytes)" "$tmp/ds-bigpipe.send.err"
ds_recv_max=$((ds_size - 1)) devstate_run ds-bigrecv "$tmp/dev/state.bin" "$tmp/dev/bigrecv.out"
check "device state above recv's max: both fail ($send_rc/$recv_rc)" \
	failed_cleanly "$send_rc" "$recv_rc"
check "device state above recv's max: recv names the field and its max" \
	grep -q "above this receiver's device_state_max $((ds_size - 1))" "$tmp/ds-bigrecv.recv.err"
check "device state above a max: no state, no image" \
	test ! -e "$tmp/dev/bigpipe.out" -a ! -e "$tmp/dev/bigrecv.out" -a ! -e "$tmp/dev/ds-bigrecv.img"
check "device state above a max: no temp file left" no_temp_files "$tmp/dev"
rc=0
"$lm" recv --listen 127.0.0.1:0 --image "$tmp/dev/x.img" --device-state-max 1M \
	>/dev/null 2>"$tmp/ds-maxonly.err" || rc=$?
check "--device-state-max without --device-state: a usage error ($rc)" test "$rc" = 2
check "--device-state-max without --device-state: said" \
	grep -q "needs --device-state" "$tmp/ds-maxonly.err"

# Under LM_SANITIZE the CLI is instrumented: any report is a failure.
check "no sanitizer report in any livemig stderr" \
	not grep -lE "Sanitizer|runtime error" "$tmp"/*.err

echo "test_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
