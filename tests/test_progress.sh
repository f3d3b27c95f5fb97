#!/usr/bin/env bash
# The CLI's progress and streaming send, end to end: a plain progress line
# every --progress-interval on both sides when stderr is not a terminal,
# none with --quiet, a bar redrawn with \r on a pty; the statistics' load
# time; a send whose peak resident set stays far below its image (the image
# is streamed, not read whole); and an image truncated while it is sent,
# which fails cleanly (exit 1, the offset named, no SIGBUS, nothing left
# at the destination); a sparse image's holes mapped as zeros, not read.
# Usage: tests/test_progress.sh path/to/livemig path/to/lm-mkimage
set -euo pipefail

lm=${1:?usage: $0 path/to/livemig path/to/lm-mkimage}
mkimage=${2:?usage: $0 path/to/livemig path/to/lm-mkimage}
[ -x "$lm" ] || { echo "FAIL: $lm is not executable"; exit 1; }
[ -x "$mkimage" ] || { echo "FAIL: $mkimage is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }

name=test_progress
. "$(dirname "$0")/shell_harness.sh"

# A slow migration without a shaper: zstd at level 19 on one channel moves
# a few MiB a second, so a 12 MiB image takes seconds (longer under the
# sanitizers: only lower bounds of line counts are checked).
slow=(--codec zstd --level 19 --channels 1)
"$mkimage" --size 12M --out "$tmp/small" --seed 7 --quiet

# start_recv NAME [options]: a receiver on unix:$tmp/NAME.sock into
# $tmp/NAME.out; sets rpid once the socket exists.
start_recv() {
	local name=$1
	shift
	"$lm" recv --listen "unix:$tmp/$name.sock" --image "$tmp/$name.out" --timeout 30 \
		--accept-timeout 30 "$@" >"$tmp/$name.recv.out" 2>"$tmp/$name.recv.err" &
	rpid=$!
	bg_pids+=("$rpid")
	for _ in $(seq 1 500); do
		[ -S "$tmp/$name.sock" ] && return 0
		sleep 0.02
	done
	echo "  recv did not listen: $(cat "$tmp/$name.recv.err")"
}

# wait_rc PID: its exit status in rc.
wait_rc() {
	rc=0
	wait "$1" || rc=$?
}

# lines FILE WHO: the plain progress lines of WHO ("send" or "recv").
lines() { grep -cE "^livemig $2: [0-9]+%, " "$1" || true; }

# spaced FILE WHO MIN: the elapsed times ("…, 1.2s") of WHO's lines rise by
# at least MIN seconds from one line to the next (the interval is kept).
spaced() {
	python3 - "$@" <<'EOF'
import re, sys
path, who, least = sys.argv[1], sys.argv[2], float(sys.argv[3])
t = [float(m.group(1)) for l in open(path)
     if (m := re.match(rf"livemig {who}: \d+%, .*, ([0-9.]+)s$", l))]
bad = [(a, b) for a, b in zip(t, t[1:]) if b - a < least]
if bad:
    print(f"  lines too close: {bad[:3]}")
sys.exit(1 if bad or not t else 0)
EOF
}

# ---- plain lines at the interval, both sides ----------------------------
start_recv plain --progress-interval 0.3
send_rc=0
"$lm" send --image "$tmp/small" --to "unix:$tmp/plain.sock" "${slow[@]}" --progress-interval 0.3 \
	>"$tmp/plain.send.out" 2>"$tmp/plain.send.err" || send_rc=$?
wait_rc "$rpid"
check "plain: send and recv succeed" test "$send_rc$rc" = 00
check "plain: the image arrived" cmp -s "$tmp/small" "$tmp/plain.out"
n=$(lines "$tmp/plain.send.err" send)
check "plain: send printed progress lines ($n)" test "$n" -ge 2
n=$(lines "$tmp/plain.recv.err" recv)
check "plain: recv printed progress lines ($n)" test "$n" -ge 2
check "plain: send's lines are 0.3 s apart" spaced "$tmp/plain.send.err" send 0.25
check "plain: recv's lines are 0.3 s apart" spaced "$tmp/plain.recv.err" recv 0.25
check "plain: no \\r nor bar in a log" not grep -q $'\r\\|\\[#' "$tmp/plain.send.err"
check "plain: lines name bytes, rate, ETA and pages" \
	grep -qE '^livemig send: [0-9]+%, [0-9.]+ [KMG]iB of 12.0 MiB, .*/s, ETA [^,]+, [0-9]+ pages, ' \
	"$tmp/plain.send.err"
check "plain: the stats show the load time" grep -qE '^load time: [0-9]+ ms$' "$tmp/plain.send.out"
after_setup() { grep -A1 '^setup: ' "$1" | grep '^load time: ' >/dev/null; }
check "plain: the load time is the line after setup" after_setup "$tmp/plain.send.out"

# ---- --quiet: none; --json: the load time as a field ---------------------
start_recv quiet --quiet
send_rc=0
"$lm" send --image "$tmp/small" --to "unix:$tmp/quiet.sock" "${slow[@]}" --progress-interval 0.1 \
	--quiet >"$tmp/quiet.send.out" 2>"$tmp/quiet.send.err" || send_rc=$?
wait_rc "$rpid"
check "quiet: send and recv succeed" test "$send_rc$rc" = 00
check "quiet: send printed nothing" test ! -s "$tmp/quiet.send.err" -a ! -s "$tmp/quiet.send.out"
check "quiet: recv printed nothing" test ! -s "$tmp/quiet.recv.err"

start_recv json --json --quiet
send_rc=0
"$lm" send --image "$tmp/small" --to "unix:$tmp/json.sock" --json --progress-interval 60 \
	>"$tmp/json.send.out" 2>"$tmp/json.send.err" || send_rc=$?
wait_rc "$rpid"
check "json: send succeeds" test "$send_rc$rc" = 00
check "json: load_time_ms within total_time_ms" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if 0 <= d["load_time_ms"] <= d["total_time_ms"] else 1)' "$tmp/json.send.out"

# ---- a terminal: the bar, redrawn with \r, ended by a newline ------------
if command -v script >/dev/null; then
	start_recv tty --quiet
	# script(1) runs the command on a pty; its output (the pty's) is the log.
	script -qefc "'$lm' send --image '$tmp/small' --to 'unix:$tmp/tty.sock' ${slow[*]} \
		>'$tmp/tty.send.out'" "$tmp/tty.log" </dev/null >/dev/null 2>&1 || true
	wait_rc "$rpid"
	check "tty: the migration succeeded" test "$rc" = 0
	n=$(grep -o $'\r''livemig send: \[[#.]*\] ' "$tmp/tty.log" | wc -l)
	check "tty: a bar redrawn in place ($n times)" test "$n" -ge 3
	check "tty: the last bar is full and ends the line" \
		grep -qE $'\r''livemig send: \[#+\] 100% .*'$'\033''\[K'$'\r''?$' "$tmp/tty.log"
	check "tty: no plain lines on a terminal" not grep -qE '^livemig send: [0-9]+%, ' "$tmp/tty.log"
else
	echo "SKIP: tty: script(1) from util-linux is not installed"
fi

# ---- the resident set of a send stays far below its image ----------------
# ru_maxrss of the sender (os.wait4): with the old MAP_POPULATE it was the
# whole image; streamed, it is the read-ahead window, the pages touched
# again since the last drop (50 ms) and the per-page metadata.
"$mkimage" --size 768M --out "$tmp/big" --seed 8 --quiet
start_recv big --quiet
rss=$(python3 - "$lm" "$tmp/big" "unix:$tmp/big.sock" <<'EOF'
import os, subprocess, sys
lm, img, to = sys.argv[1:]
p = subprocess.Popen([lm, "send", "--image", img, "--to", to, "--quiet", "--read-ahead", "16M"])
_, status, ru = os.wait4(p.pid, 0)
print(ru.ru_maxrss if os.waitstatus_to_exitcode(status) == 0 else -1)
EOF
)
wait_rc "$rpid"
check "rss: the 768 MiB migration succeeded" test "$rss" -ge 0 -a "$rc" = 0
check "rss: the image arrived" cmp -s "$tmp/big" "$tmp/big.out"
echo "  sender peak RSS: $((rss / 1024)) MiB for a 768 MiB image"
if grep -qa __tsan_init "$lm"; then
	# Its shadow memory grows with every byte the sender reads: not ours.
	echo "SKIP: rss: under ThreadSanitizer the peak RSS is its shadow's"
else
	check "rss: the sender's peak RSS is under half the image" test "$rss" -lt $((384 * 1024))
fi
rm -f "$tmp/big.out"

# ---- an image truncated while it is sent ---------------------------------
"$mkimage" --size 64M --out "$tmp/trunc" --seed 9 --quiet
start_recv trunc
"$lm" send --image "$tmp/trunc" --to "unix:$tmp/trunc.sock" "${slow[@]}" --progress-interval 0.1 \
	>"$tmp/trunc.send.out" 2>"$tmp/trunc.send.err" &
spid=$!
bg_pids+=("$spid")
# Once a few MiB went, cut the file to 4 MiB: the rest is gone.
for _ in $(seq 1 1000); do
	grep -qE '^livemig send: [0-9]+%, [0-9.]+ MiB ' "$tmp/trunc.send.err" 2>/dev/null && break
	sleep 0.02
done
truncate -s 4M "$tmp/trunc"
wait_rc "$spid"
send_rc=$rc
wait_rc "$rpid"
check "truncated: send exits 1, not by a signal (rc $send_rc)" test "$send_rc" = 1
check "truncated: the error names the file, offset and cause" \
	grep -qE "^livemig send: $tmp/trunc: .*cannot read byte [0-9]+: the file is now 4194304 bytes, it was 67108864 .*truncated while being sent" \
	"$tmp/trunc.send.err"
check "truncated: recv fails" test "$rc" != 0
check "truncated: nothing at the destination" test ! -e "$tmp/trunc.out"
check "truncated: no temporary file left" \
	test -z "$(find "$tmp" -name '.trunc.out.livemig-*')"

# ---- a sparse image: holes mapped as zeros, not read ---------------------
# Data at unaligned offsets and in pieces, holes shorter and longer than the
# stream's 64 KiB (STREAM_HOLE_MIN), one unaligned at both ends, one
# running to an end that is not page-aligned. The image must arrive whole,
# the holes the file system reports (rounded in to pages, 64 KiB or more)
# count as image_hole_bytes, and, the file's page cache dropped first, the
# send must not fill the page cache with its holes.
sparse=$(python3 - "$tmp/sparse" <<'EOF'
import os, sys
path = sys.argv[1]
K, M = 1024, 1024 * 1024
size = 40 * M + 1234
data = [(0, 8 * K), (8 * K + 4 * K, 20 * K),       # a 4 KiB hole: too small
        (100000, 5000),                              # unaligned on both sides
        (1 * M, 512 * K), (9 * M + 123, 77 * K),
        (12 * M, 1 * M)]                             # then a hole to the end
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.ftruncate(fd, size)
for i, (off, n) in enumerate(data):
    os.pwrite(fd, bytes((i * 37 + j * 7) & 0xFF | 1 for j in range(n)), off)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
# The holes as this file system reports them (after the drop: where
# extents are preallocated, SEEK_DATA may follow the page cache), rounded
# in to pages, 64 KiB or more: what the sender should map as zeros.
pg = os.sysconf("SC_PAGE_SIZE")
want, at = 0, 0
while at < size:
    h = os.lseek(fd, at, os.SEEK_HOLE)
    if h >= size:
        break
    try:
        d = os.lseek(fd, h, os.SEEK_DATA)
    except OSError:
        d = size
    lo, hi = (h + pg - 1) // pg * pg, d // pg * pg
    if hi - lo >= 64 * K:
        want += hi - lo
    at = d
print(want, sum(n for _, n in data))
EOF
)
read -r sparse_holes sparse_data <<<"$sparse"
start_recv sparse --quiet
send_rc=0
# The smallest read-ahead: the image is advised in many steps, holes
# crossing them.
"$lm" send --image "$tmp/sparse" --to "unix:$tmp/sparse.sock" --json --read-ahead 2M \
	>"$tmp/sparse.send.out" 2>"$tmp/sparse.send.err" || send_rc=$?
wait_rc "$rpid"
check "sparse: send and recv succeed" test "$send_rc$rc" = 00
got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["image_hole_bytes"])' \
	"$tmp/sparse.send.out" 2>/dev/null || echo -1)
if [ "$sparse_holes" -gt 0 ]; then
	check "sparse: the holes are counted ($got bytes, the file system's $sparse_holes)" \
		test "$got" = "$sparse_holes"
	if command -v fincore >/dev/null && [ "$(stat -f -c %T "$tmp")" != tmpfs ]; then
		res=$(fincore -b -n -o RES "$tmp/sparse" | tr -d ' ') || res=-1
		[[ $res =~ ^[0-9]+$ ]] || res=-1
		# Read whole, the 40 MiB would all be cached; the data is 1.6 MiB,
		# and the kernel's read-ahead around it takes more (1.7 MiB in all
		# alone, 9.1 MiB once beside other tests): less than the data and
		# half of the holes.
		check "sparse: the holes stay out of the page cache ($res bytes cached)" \
			test "$res" -ge 0 -a "$res" -lt $((sparse_data + sparse_holes / 2))
	else
		echo "SKIP: sparse: page cache: no fincore, or $tmp is a tmpfs (nothing to drop)"
	fi
else
	echo "SKIP: sparse: the file system of $tmp reports no holes (SEEK_HOLE)"
	check "sparse: no holes counted ($got)" test "$got" = 0
fi
# cmp reads the whole file, holes too: after the page cache check.
check "sparse: the image arrived, holes as zeros" cmp -s "$tmp/sparse" "$tmp/sparse.out"

# ---- an image that cannot be opened or read ------------------------------
rc=0
"$lm" send --image "$tmp" --to "unix:$tmp/none.sock" 2>"$tmp/dir.err" || rc=$?
check "unreadable: a directory is refused (rc $rc)" test "$rc" = 1
check "unreadable: ... saying why" grep -q "not a regular file" "$tmp/dir.err"
rc=0
"$lm" send --image "$tmp/missing" --to "unix:$tmp/none.sock" 2>"$tmp/missing.err" || rc=$?
check "unreadable: a missing file is refused (rc $rc)" test "$rc" = 1
check "unreadable: ... naming it" grep -q "$tmp/missing: No such file" "$tmp/missing.err"
rc=0
"$lm" send --image "$tmp/small" --to "unix:$tmp/none.sock" --progress-interval 0 2>/dev/null || rc=$?
check "options: --progress-interval 0 is refused" test "$rc" = 2
rc=0
"$lm" send --image "$tmp/small" --to "unix:$tmp/none.sock" --read-ahead 1K 2>/dev/null || rc=$?
check "options: --read-ahead below 2M is refused" test "$rc" = 2

sanitizer_clean() {
	! grep -l 'Sanitizer' "$tmp"/*.err "$tmp"/*.log 2>/dev/null
}
check "no sanitizer reports" sanitizer_clean

echo "test_progress.sh: $passed passed, $failed failed"
[ "$failed" = 0 ]
