#!/usr/bin/env bash
# The receiver's files and what either side prints of the peer's strings:
# image, device state and temp file modes, a full file system is an error
# (never SIGBUS), for the image and the device state,
# --max-size, SIGTERM on recv, send and demo, and escaped peer strings.
# Usage: tests/test_hygiene.sh path/to/livemig path/to/lm-mkimage
set -euo pipefail
export LC_ALL=C # grep matches bytes, not characters

lm=${1:?usage: $0 path/to/livemig path/to/lm-mkimage}
mkimage=${2:?usage: $0 path/to/livemig path/to/lm-mkimage}
[ -x "$lm" ] || { echo "FAIL: $lm is not executable"; exit 1; }
[ -x "$mkimage" ] || { echo "FAIL: $mkimage is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }

mnt=
harness_cleanup() { [ -z "$mnt" ] || umount "$mnt" 2>/dev/null || true; }
name=test_hygiene
. "$(dirname "$0")/shell_harness.sh"

# listen_port PID: the TCP port PID listens on, from /proc (up to 10 s).
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
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f)
            for line in f:
                p = line.split()
                if p[3] == "0A" and p[9] in inodes:  # LISTEN
                    print(int(p[1].rsplit(":", 1)[1], 16))
                    sys.exit(0)
    except (FileNotFoundError, ProcessLookupError):
        sys.exit(1)
    time.sleep(0.01)
sys.exit(1)
EOF
}

# wait_exit PID SECONDS: sets rc to the job's exit status (killed after
# SECONDS: 137).
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

# start_recv IMAGE NAME [options]: sets rpid and port; output in
# $tmp/NAME.recv.{out,err}.
start_recv() {
	local image=$1 name=$2
	shift 2
	"$lm" recv --listen 127.0.0.1:0 --image "$image" --accept-timeout 10 --timeout 10 "$@" \
		>"$tmp/$name.recv.out" 2>"$tmp/$name.recv.err" &
	rpid=$!
	bg_pids+=("$rpid")
	port=$(listen_port "$rpid") || port=
}

# migrate SRC DST NAME [send options]: sets send_rc and recv_rc; RECV_OPTS
# (an array) goes to recv.
RECV_OPTS=()
migrate() {
	local src=$1 dst=$2 name=$3
	shift 3
	send_rc=-1
	start_recv "$dst" "$name" "${RECV_OPTS[@]}"
	[ -n "$port" ] || { echo "  recv did not listen: $(cat "$tmp/$name.recv.err")"; }
	send_rc=0
	timeout -k 5 30 "$lm" send --image "$src" --to "127.0.0.1:${port:-1}" --timeout 10 "$@" \
		>"$tmp/$name.send.out" 2>"$tmp/$name.send.err" || send_rc=$?
	wait_exit "$rpid" 20
	recv_rc=$rc
}

mode_of() { stat -c %a "$1" 2>/dev/null || echo none; }

# A relay for "mid-migration": it passes the receiver's frames back at
# once, but of the sender's frames only the first MiB of each channel and
# after that only ERROR frames. The sender sends everything and waits for
# the verdict, the receiver waits for the rest: both stay in the session
# until one of them is stopped, and each still hears the other's ERROR.
cat >"$tmp/hold.py" <<'EOF'
import socket, struct, sys, threading
up, limit = int(sys.argv[1]), 1 << 20
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print(ls.getsockname()[1], flush=True)

def shut(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def frames(a, b):  # sender -> receiver, whole frames
    buf, sent = b"", 0
    try:
        while True:
            d = a.recv(1 << 16)
            if not d:
                break
            buf += d
            while len(buf) >= 12:
                n = 12 + struct.unpack(">I", buf[8:12])[0]
                if len(buf) < n:
                    break
                f, buf = buf[:n], buf[n:]
                if sent < limit or f[4] == 6:  # kind 6: ERROR
                    b.sendall(f)
                    sent += n
    except OSError:
        pass
    shut(a, b)

def pump(a, b):  # receiver -> sender, all of it
    try:
        while True:
            d = a.recv(1 << 16)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    shut(a, b)

while True:
    c, _ = ls.accept()
    s = socket.create_connection(("127.0.0.1", up))
    threading.Thread(target=frames, args=(c, s), daemon=True).start()
    threading.Thread(target=pump, args=(s, c), daemon=True).start()
EOF

# start_held DST NAME [recv options]: recv on DST, a relay in front of it and
# a sender of $src through it; sets rpid, spid, relay. Returns 1 if the
# session did not get under way (the temp file never appeared).
start_held() {
	local dst=$1 name=$2
	shift 2
	start_recv "$dst" "$name" "$@"
	python3 "$tmp/hold.py" "${port:-1}" >"$tmp/$name.relay" 2>"$tmp/$name.relay.err" &
	relay=$!
	bg_pids+=("$relay")
	for _ in $(seq 100); do [ -s "$tmp/$name.relay" ] && break; sleep 0.05; done
	"$lm" send --image "$src" --to "127.0.0.1:$(cat "$tmp/$name.relay")" --timeout 10 \
		>"$tmp/$name.send.out" 2>"$tmp/$name.send.err" &
	spid=$!
	bg_pids+=("$spid")
	for _ in $(seq 100); do
		[ -n "$(find "$(dirname "$dst")" -name '*.livemig-*')" ] && sleep 0.3 && return 0
		sleep 0.05
	done
	return 1
}
stop_relay() {
	kill "$relay" 2>/dev/null || true
	wait "$relay" 2>/dev/null || true
	forget_pid "$relay"
}

src="$tmp/src.img"
"$mkimage" --size 32M --out "$src" --seed 3 >/dev/null
size=$(stat -c %s "$src")

# ---- modes -----------------------------------------------------------------

echo "== a new image is 0600, whatever the umask"
mkdir -p "$tmp/new"
saved_umask=$(umask)
for um in 022 000; do
	umask "$um"
	migrate "$src" "$tmp/new/vm$um.img" "new$um"
	umask "$saved_umask"
	check "new image, umask $um: migrated ($send_rc/$recv_rc)" test "$send_rc/$recv_rc" = 0/0
	check "new image, umask $um: identical" cmp "$src" "$tmp/new/vm$um.img"
	check "new image, umask $um: mode 600 ($(mode_of "$tmp/new/vm$um.img"))" \
		test "$(mode_of "$tmp/new/vm$um.img")" = 600
done

echo "== an existing image keeps its mode"
mkdir -p "$tmp/old"
echo old >"$tmp/old/vm.img"
chmod 0640 "$tmp/old/vm.img"
migrate "$src" "$tmp/old/vm.img" old
check "existing 0640: migrated ($send_rc/$recv_rc)" test "$send_rc/$recv_rc" = 0/0
check "existing 0640: replaced" cmp "$src" "$tmp/old/vm.img"
check "existing 0640: still 0640 ($(mode_of "$tmp/old/vm.img"))" test "$(mode_of "$tmp/old/vm.img")" = 640

echo "== the temp file is 0600 while the image arrives"
mkdir -p "$tmp/held"
if start_held "$tmp/held/vm.img" held; then
	t=$(find "$tmp/held" -name '.vm.img.livemig-*' | head -n 1)
	check "temp file: named .vm.img.livemig-XXXXXX next to the image" test -n "$t"
	check "temp file: mode 600 mid-migration ($(mode_of "$t"))" test "$(mode_of "$t")" = 600
	pass "temp file: session under way"
else
	fail "temp file: session under way (no temp file appeared)"
fi

# ---- SIGTERM -----------------------------------------------------------------

echo "== SIGTERM to recv mid-migration"
check "recv SIGTERM: recv and send still running" kill -0 "$rpid" "$spid"
kill -TERM "$rpid" 2>/dev/null || true
wait_exit "$rpid" 10
check "recv SIGTERM: exits 143 ($rc)" test "$rc" = 143
check "recv SIGTERM: no temp file left" no_temp_files "$tmp/held"
check "recv SIGTERM: no image" test ! -e "$tmp/held/vm.img"
wait_exit "$spid" 10
check "recv SIGTERM: send exits non-zero ($rc)" failed_cleanly "$rc"
check "recv SIGTERM: send shows the receiver's reason ($(tail -n 1 "$tmp/held.send.err"))" \
	grep -q "receiver reported: .*cancelled" "$tmp/held.send.err"
stop_relay

echo "== SIGTERM to send mid-migration"
if start_held "$tmp/held/vm.img" sterm; then
	kill -TERM "$spid" 2>/dev/null || true
	wait_exit "$spid" 10
	check "send SIGTERM: exits 143 ($rc)" test "$rc" = 143
	check "send SIGTERM: says it was cancelled" grep -q "cancelled" "$tmp/sterm.send.err"
	wait_exit "$rpid" 10
	check "send SIGTERM: recv exits non-zero ($rc)" failed_cleanly "$rc"
	check "send SIGTERM: recv shows the sender's reason ($(tail -n 1 "$tmp/sterm.recv.err"))" \
		grep -q "sender reported: .*cancelled" "$tmp/sterm.recv.err"
	check "send SIGTERM: no image, no temp file" \
		eval 'test ! -e "$tmp/held/vm.img" && no_temp_files "$tmp/held"'
else
	fail "send SIGTERM: session under way (no temp file appeared)"
fi
stop_relay

echo "== SIGTERM to recv while it waits for a sender"
start_recv "$tmp/held/vm.img" idle
sleep 0.2
t0=$SECONDS
kill -TERM "$rpid" 2>/dev/null || true
wait_exit "$rpid" 10
check "idle recv SIGTERM: exits 143 within 2 s ($rc)" test "$rc" = 143 -a $((SECONDS - t0)) -le 2
check "idle recv SIGTERM: through the cancel (not the default action)" \
	grep -q "migration failed: cancelled" "$tmp/idle.recv.err"

echo "== SIGTERM to demo mid-migration"
"$lm" demo --size 64M --working-set 16M --dirty-rate 16M --max-bandwidth 20M --seed 5 \
	>"$tmp/demo.out" 2>"$tmp/demo.err" &
dpid=$!
bg_pids+=("$dpid")
for _ in $(seq 200); do grep -q "^round 1" "$tmp/demo.out" 2>/dev/null && break; sleep 0.05; done
if grep -q "^round 1" "$tmp/demo.out"; then
	sleep 0.5
	kill -TERM "$dpid" 2>/dev/null || true
	wait_exit "$dpid" 20
	check "demo SIGTERM: exits 143 ($rc)" test "$rc" = 143
	check "demo SIGTERM: the migration failed, cancelled" grep -q "migration failed: cancelled" "$tmp/demo.err"
	check "demo SIGTERM: the workload resumed" grep -q "the workload resumed on the source" "$tmp/demo.out"
	check "demo SIGTERM: the destination heard why" grep -q "destination: .*sender reported: .*cancelled" "$tmp/demo.err"
	check "demo SIGTERM: no verified line" not grep -q "verified:" "$tmp/demo.out"
else
	fail "demo SIGTERM: the demo never started round 1 ($(tail -n 2 "$tmp/demo.err"))"
	kill -9 "$dpid" 2>/dev/null || true
fi

# ---- space -------------------------------------------------------------------

echo "== --max-size below the image"
mkdir -p "$tmp/lim"
RECV_OPTS=(--max-size 16M)
migrate "$src" "$tmp/lim/vm.img" lim
RECV_OPTS=()
check "max-size: recv exits non-zero ($recv_rc)" failed_cleanly "$recv_rc"
check "max-size: recv names the file and the limit" \
	grep -q "lim/vm.img: the sender announced more than the limit of 16777216 bytes" "$tmp/lim.recv.err"
check "max-size: send exits non-zero ($send_rc)" failed_cleanly "$send_rc"
check "max-size: send shows the receiver's refusal ($(tail -n 1 "$tmp/lim.send.err"))" \
	grep -q "receiver refused: .*($size bytes) brings the session to $size bytes, above this receiver's limit of 16777216 (over a receiver limit)" "$tmp/lim.send.err"
check "max-size: no image, no temp file" eval 'test ! -e "$tmp/lim/vm.img" && no_temp_files "$tmp/lim"'
# sizes_parse: K/M/G/T (either case, KiB and KB alike: the demo's grammar,
# tools/cli_num.c) and plain bytes are accepted (the bad address then fails
# with 1), junk and 0 are usage errors (2).
sizes_parse() {
	local v r
	for v in 1 4096 8K 8k 16M 16MiB 1KB 1G 2T; do
		r=0
		timeout 10 "$lm" recv --listen no-port --image "$tmp/lim/x" --max-size "$v" 2>/dev/null || r=$?
		[ "$r" = 1 ] || { echo "  --max-size $v: exit $r"; return 1; }
	done
	for v in 0 -1 1X 1Kb M 99999999999T " 1" ""; do
		r=0
		timeout 10 "$lm" recv --listen no-port --image "$tmp/lim/x" --max-size "$v" 2>/dev/null || r=$?
		[ "$r" = 2 ] || { echo "  --max-size '$v': exit $r"; return 1; }
	done
}
check "max-size: K, M, G, T and bytes parse; junk is a usage error" sizes_parse

# A file system without fallocate (EOPNOTSUPP), simulated by a preloaded
# fallocate that always fails so: recv falls back to anonymous memory.
nofalloc=
cat >"$tmp/nofalloc.c" <<'EOF'
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
int fallocate(int fd, int mode, off_t off, off_t len)
{
	(void)fd, (void)mode, (void)off, (void)len;
	errno = EOPNOTSUPP;
	return -1;
}
int fallocate64(int fd, int mode, off_t off, off_t len) { return fallocate(fd, mode, off, len); }
EOF
if command -v cc >/dev/null && cc -shared -fPIC -o "$tmp/nofalloc.so" "$tmp/nofalloc.c"; then
	nofalloc="$tmp/nofalloc.so"
fi
echo "== no fallocate: received into memory, written at commit"
if [ -z "$nofalloc" ]; then
	echo "SKIP: the no-fallocate cases: no C compiler (cc) to build the fallocate shim"
else
	mkdir -p "$tmp/nofa"
	LD_PRELOAD=$nofalloc migrate "$src" "$tmp/nofa/vm.img" nofa --codec zstd
	check "no fallocate: migrated ($send_rc/$recv_rc)" test "$send_rc/$recv_rc" = 0/0
	check "no fallocate: identical" cmp "$src" "$tmp/nofa/vm.img"
	check "no fallocate: mode 600 ($(mode_of "$tmp/nofa/vm.img"))" test "$(mode_of "$tmp/nofa/vm.img")" = 600
fi

echo "== an 8 MiB file system, 32 MiB images"
mnt="$tmp/small"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=8m tmpfs "$mnt" 2>"$tmp/mount.err"; then
	echo "SKIP: the tmpfs cases: cannot mount a tmpfs here ($(cat "$tmp/mount.err"))"
	mnt=
else
	# $src compresses: before fallocate, zstd decoding into the sparse
	# shared mapping of a full tmpfs was SIGBUS (135).
	# Default --max-size: the free space, so the refusal comes first.
	migrate "$src" "$mnt/vm.img" full --codec zstd
	check "full, default max-size: recv exits non-zero ($recv_rc)" failed_cleanly "$recv_rc"
	check "full, default max-size: recv names the file and the free space" \
		grep -q "small/vm.img: the sender announced more than the limit of 83[0-9]* bytes" \
		"$tmp/full.recv.err"
	check "full, default max-size: send exits non-zero ($send_rc)" failed_cleanly "$send_rc"
	# A limit above the space: the reservation, piece by piece as pages
	# arrive, must fail cleanly.
	RECV_OPTS=(--max-size 1G)
	for codec in none zstd lz4 zlib deflate; do
		migrate "$src" "$mnt/vm.img" "full-$codec" --codec "$codec" --accel off
		check "full $codec: recv exits non-zero, no SIGBUS ($recv_rc)" failed_cleanly "$recv_rc"
		check "full $codec: recv names the file and the space" \
			grep -q "small/vm.img: cannot reserve bytes [0-9]*\.\.[0-9]* of 33554432 for the image: No space left" \
			"$tmp/full-$codec.recv.err"
		check "full $codec: send exits non-zero ($send_rc)" failed_cleanly "$send_rc"
		check "full $codec: send shows the receiver's reason ($(tail -n 1 "$tmp/full-$codec.send.err"))" \
			grep -Eq "receiver (refused|reported): .*No space left on device" "$tmp/full-$codec.send.err"
		check "full $codec: no temp file, no image" \
			eval 'test ! -e "$mnt/vm.img" && no_temp_files "$mnt"'
	done
	if [ -n "$nofalloc" ]; then
		LD_PRELOAD=$nofalloc migrate "$src" "$mnt/vm.img" full-nofa --codec zstd
		check "full, no fallocate: recv exits non-zero, no SIGBUS ($recv_rc)" failed_cleanly "$recv_rc"
		check "full, no fallocate: recv names the file and the size" \
			grep -q "small/vm.img: writing 33554432 bytes: No space left" "$tmp/full-nofa.recv.err"
		check "full, no fallocate: no temp file, no image" \
			eval 'test ! -e "$mnt/vm.img" && no_temp_files "$mnt"'
	fi
	# The device state into it (the image elsewhere): a small one is
	# written 0600; one larger than the space fails the write (ENOSPC:
	# write(2), no mapping to fault), named, and leaves nothing.
	head -c $((1 << 20)) /dev/urandom >"$tmp/dev-small.bin"
	head -c $((16 << 20)) /dev/urandom >"$tmp/dev-big.bin"
	RECV_OPTS=(--device-state "$mnt/dev.state")
	migrate "$src" "$tmp/ds-small.img" ds-small --device-state "$tmp/dev-small.bin"
	check "device state: migrated ($send_rc/$recv_rc)" test "$send_rc/$recv_rc" = 0/0
	check "device state: identical" cmp "$tmp/dev-small.bin" "$mnt/dev.state"
	check "device state: mode 600 ($(mode_of "$mnt/dev.state"))" test "$(mode_of "$mnt/dev.state")" = 600
	rm -f "$mnt/dev.state" "$tmp/ds-small.img"
	migrate "$src" "$tmp/ds-full.img" ds-full --device-state "$tmp/dev-big.bin"
	check "device state, full: recv exits non-zero, no signal ($recv_rc)" failed_cleanly "$recv_rc"
	check "device state, full: recv names the file, where and why" \
		grep -q "small/dev.state: writing the device state at byte [0-9][0-9]*: No space left" \
		"$tmp/ds-full.recv.err"
	check "device state, full: send exits non-zero ($send_rc)" failed_cleanly "$send_rc"
	check "device state, full: send says the destination refused it" \
		grep -q "device state refused by the destination" "$tmp/ds-full.send.err"
	check "device state, full: no state, no temp file, no image" \
		eval 'test ! -e "$mnt/dev.state" -a ! -e "$tmp/ds-full.img" && no_temp_files "$mnt"'
	RECV_OPTS=()
	check "full: the file system is empty again ($(df --output=used "$mnt" | tail -n 1) KiB)" \
		test "$(df --output=used "$mnt" | tail -n 1 | tr -d ' ')" -lt 64
	umount "$mnt" && mnt=
fi

# ---- escaping ----------------------------------------------------------------

echo "== a hostile image name (newline, ESC) is shown escaped"
mkdir -p "$tmp/esc"
evil=$'x\nlivemig recv: migration completed\e[2J\e]0;pwned\a'
cp "$src" "$tmp/$evil"
migrate "$tmp/$evil" "$tmp/esc/vm.img" esc
check "evil name: migrated ($send_rc/$recv_rc)" test "$send_rc/$recv_rc" = 0/0
check "evil name: recv shows the escaped name" \
	grep -qF 'receiving "x\x0alivemig recv: migration completed\x1b[2J\x1b]0;pwned\x07"' "$tmp/esc.recv.err"
# And in the library's refusal, on both sides.
RECV_OPTS=(--max-size 1M)
migrate "$tmp/$evil" "$tmp/esc/vm2.img" esc2
RECV_OPTS=()
check "evil name refused: recv's error has the escaped name" \
	grep -qF 'region "x\x0alivemig recv: migration completed\x1b[2J' "$tmp/esc2.recv.err"
check "evil name refused: send shows it escaped (twice: it came back)" \
	grep -qF 'region "x\x5cx0alivemig recv: migration completed' "$tmp/esc2.send.err"
for f in esc.recv.err esc.recv.out esc2.recv.err esc2.send.err; do
	check "evil name: no ESC or BEL byte in $f" not grep -q $'[\e\a]' "$tmp/$f"
	check "evil name: no injected line in $f" not grep -q "^livemig recv: migration completed" "$tmp/$f"
done

echo "== hostile ERROR texts are shown escaped"
# A fake receiver that answers every hello with an ERROR carrying a fake
# line and terminal controls.
cat >"$tmp/evil_rx.py" <<'EOF'
import socket, struct, sys
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
print(ls.getsockname()[1], flush=True)
msg = b"no\nlivemig send: migration completed\x1b[31m\x9b2J\\"
c, _ = ls.accept()
c.recv(76)
body = struct.pack(">iHHHH", -4003, 0, 0, len(msg), 0) + msg
c.sendall(struct.pack(">IBBHI", 0x4C4D4947, 6, 0, 0, len(body)) + body)
# Read what the sender still sends before closing: unread data would
# reset the connection and could discard the ERROR.
c.shutdown(socket.SHUT_WR)
c.settimeout(2)
try:
    while c.recv(65536):
        pass
except OSError:
    pass
c.close()
EOF
python3 "$tmp/evil_rx.py" >"$tmp/evil_rx.port" &
erx=$!
bg_pids+=("$erx")
for _ in $(seq 100); do [ -s "$tmp/evil_rx.port" ] && break; sleep 0.05; done
erx_rc=0
timeout -k 5 20 "$lm" send --image "$src" --to "127.0.0.1:$(cat "$tmp/evil_rx.port")" --channels 1 \
	--timeout 5 --quiet >"$tmp/erx.out" 2>"$tmp/erx.err" || erx_rc=$?
wait_exit "$erx" 5
check "evil receiver: send exits non-zero ($erx_rc)" failed_cleanly "$erx_rc"
check "evil receiver: its text escaped" \
	grep -qF 'receiver refused: no\x0alivemig send: migration completed\x1b[31m\x9b2J\x5c' "$tmp/erx.err"
check "evil receiver: no raw ESC, CSI or injected line" \
	eval 'not grep -q "^livemig send: migration completed" "$tmp/erx.err" &&
	      not grep -qP "[\x1b\x9b]" "$tmp/erx.err"'

# A fake sender: a valid hello with no regions, then an ERROR like that.
cat >"$tmp/evil_tx.py" <<'EOF'
import os, socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
hello = struct.pack(">HH16sHHIHHIIQQQ", 2, 0, os.urandom(15) + b"\1", 0, 1, 4096, 0, 0,
                    128, 0, 1, 0, 0)
s.sendall(struct.pack(">IBBHI", 0x4C4D4947, 1, 0, 0, len(hello)) + hello)
time.sleep(0.2)
msg = b"bye\nlivemig recv: migration completed\x1b[2J"
body = struct.pack(">iHHHH", -4009, 0, 0, len(msg), 0) + msg
s.sendall(struct.pack(">IBBHI", 0x4C4D4947, 6, 0, 0, len(body)) + body)
time.sleep(0.5)
EOF
start_recv "$tmp/esc/vm3.img" etx
python3 "$tmp/evil_tx.py" "${port:-1}" 2>"$tmp/evil_tx.err" || true
wait_exit "$rpid" 10
check "evil sender: recv exits non-zero ($rc)" failed_cleanly "$rc"
check "evil sender: its text escaped" \
	grep -qF 'sender reported: bye\x0alivemig recv: migration completed\x1b[2J' "$tmp/etx.recv.err"
check "evil sender: no raw ESC or injected line" \
	eval 'not grep -q "^livemig recv: migration completed" "$tmp/etx.recv.err" &&
	      not grep -q $'"'"'\e'"'"' "$tmp/etx.recv.err"'

check "no sanitizer report in any livemig stderr" not grep -lE "Sanitizer|runtime error" "$tmp"/*.err

echo "test_hygiene: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
