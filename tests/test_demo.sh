#!/usr/bin/env bash
# End-to-end checks of `livemig demo`: a live migration of a workload that
# keeps writing its memory, with each dirty-page source this kernel has
# (userfaultfd write-protect, the workload's own dirty log, auto), the JSON
# statistics, usage errors, and a migration that cannot converge and must
# fail cleanly; memory from an lm-mkimage image (--from-image) and small
# writes per dirtied page (--write-bytes).
# Usage: tests/test_demo.sh path/to/livemig [path/to/lm-mkimage]
set -euo pipefail

lm=${1:?usage: $0 path/to/livemig [path/to/lm-mkimage]}
mkimage=${2:-$(dirname "$lm")/lm-mkimage}
[ -x "$lm" ] || { echo "FAIL: $lm is not executable"; exit 1; }
[ -x "$mkimage" ] || { echo "FAIL: $mkimage is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }
for t in pgrep ps script; do # without them the process checks would pass empty
	command -v "$t" >/dev/null || { echo "FAIL: $t not found (apt-get install procps bsdutils)"; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
not() { ! "$@"; }

# A small demo: 64 MiB, 16 MiB written at 16 MiB/s, on loopback.
small=(--size 64M --working-set 16M --dirty-rate 16M)

# run NAME ARGS...: `livemig demo ARGS` with a time limit; sets rc, output
# in $tmp/NAME.{out,err}.
run() {
	local name=$1
	shift
	rc=0
	timeout -k 5 120 "$lm" demo "$@" --seed "$seed" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
	if [ "$rc" != 0 ]; then
		echo "  exit $rc: $(tail -n 2 "$tmp/$name.err" | tr '\n' ' ')"
	fi
}

verified() { # verified FILE: the success line, with a checksum
	grep -qE '^demo: verified: destination memory equals the source at the pause \(checksum 0x[0-9a-f]{16}\)$' "$1"
}

# No stray processes: the destination is a child that must be reaped (or
# killed) before the demo exits. The seed, unique to this run of the test,
# tells our demos (and their forked destinations) from anyone else's.
seed=$((1000000 + $$))
no_children() {
	local left
	left=$(pgrep -f -- "demo .*--seed $seed\$" || true)
	[ -z "$left" ] || { echo "  still running: $left"; return 1; }
}

# ---- usage errors -----------------------------------------------------------

echo "== usage errors exit 2"
expect_usage() { # expect_usage DESCRIPTION ARGS...
	local what=$1 rc=0
	shift
	timeout 10 "$lm" demo "$@" >"$tmp/usage.out" 2>"$tmp/usage.err" || rc=$?
	if [ "$rc" -eq 2 ] && grep -q "usage: livemig demo" "$tmp/usage.err"; then
		pass "$what: exit 2 ($(head -n 1 "$tmp/usage.err"))"
	else
		fail "$what: exit $rc, stderr: $(head -n 1 "$tmp/usage.err")"
	fi
}
expect_usage "unknown option" --bogus
expect_usage "--size without a value" --size
expect_usage "--size 0" --size 0
expect_usage "--size with a bad suffix" --size 1X
expect_usage "--channels 0" --channels 0
expect_usage "--device-state-pad over 1G" --device-state-pad 2G
expect_usage "--device-state-unsaid alone" --device-state-unsaid
expect_usage "--codec bogus" --codec bogus
expect_usage "--dirty bogus" --dirty bogus
expect_usage "--on-limit bogus" --on-limit bogus
expect_usage "a stray argument" "${small[@]}" extra
expect_usage "--write-bytes 0" --write-bytes 0
expect_usage "--write-bytes 4097" --write-bytes 4097
expect_usage "--from-image without a value" --from-image
expect_usage "--switchover-bandwidth with a bad suffix" --switchover-bandwidth 1X
check "usage errors name the command" grep -q "^livemig demo: " "$tmp/usage.err"
rc=0
"$lm" demo --help >"$tmp/help.out" 2>&1 || rc=$?
check "--help exits 0 with the usage on stdout" test "$rc" = 0 -a -s "$tmp/help.out"
check "the CLI's usage lists demo" sh -c "'$lm' 2>&1 | grep -q 'livemig demo'"
check "--help documents --from-image and --write-bytes" \
	sh -c "grep -q -- '--from-image FILE' '$tmp/help.out' && grep -q -- '--write-bytes N' '$tmp/help.out'"

# ---- a live migration per dirty source -----------------------------------------

uffd_ok=1
"$lm" demo --probe >"$tmp/probe.out" 2>&1 || uffd_ok=0
echo "  probe: $(cat "$tmp/probe.out")"
sources=(callback auto)
if [ "$uffd_ok" = 1 ]; then
	sources=(uffd "${sources[@]}")
else
	echo "SKIP: --dirty uffd: $(cat "$tmp/probe.out")"
fi

for src in "${sources[@]}"; do
	echo "== demo --dirty $src"
	run "$src" "${small[@]}" --dirty "$src"
	check "$src: exits 0" test "$rc" = 0
	check "$src: verified line" verified "$tmp/$src.out"
	check "$src: the writers' state travelled as device state" grep -qE \
		"^demo: device state: [0-9]+ bytes \(the writers' state: [0-9]+ generators?, [0-9]+ pages written\) continues the source$" \
		"$tmp/$src.out"
	check "$src: device state in both sides' statistics" \
		test "$(grep -c '^device state: [0-9]* bytes' "$tmp/$src.out")" = 2
	check "$src: header names the dirty source" grep -q "^demo: dirty tracking: " "$tmp/$src.out"
	check "$src: one progress line per round" grep -q "^round 1 sent \[#*\]: dirty" "$tmp/$src.out"
	check "$src: both sides' statistics" \
		grep -q "^sender status: completed" "$tmp/$src.out"
	check "$src: the destination's statistics" \
		grep -q "^receiver status: completed" "$tmp/$src.out"
	check "$src: live statistics (downtime)" grep -q "^downtime: [0-9]* ms" "$tmp/$src.out"
done
if [ "$uffd_ok" = 1 ]; then
	check "auto picks uffd-wp when the kernel has it" grep -q "dirty tracking: uffd-wp" "$tmp/auto.out"
else
	check "auto falls back to the callback" grep -q "dirty tracking: callback" "$tmp/auto.out"
	run uffd_missing "${small[@]}" --dirty uffd
	check "--dirty uffd without kernel support fails" test "$rc" = 1
	check "--dirty uffd without kernel support says why" grep -q "unavailable" "$tmp/uffd_missing.err"
fi

echo "== demo with several writers, a codec and a rate limit"
run busy --size 64M --working-set 32M --dirty-rate 64M --threads 2 --codec zstd --channels 3 \
	--max-bandwidth 400M --dirty callback
check "busy: exits 0" test "$rc" = 0
check "busy: verified line" verified "$tmp/busy.out"
check "busy: the codec is named" grep -q "codec: zstd" "$tmp/busy.out"

echo "== demo on a terminal (script(1) gives it one)"
rc=0
timeout -k 5 120 script -qfec "'$lm' demo ${small[*]} --seed $seed" /dev/null >"$tmp/tty.out" 2>&1 || rc=$?
check "tty: exits 0" test "$rc" = 0
# The terminal turns every LF into CR LF: a redraw is a CR not followed by LF.
check "tty: the progress line is redrawn in place (bare CR)" python3 -c '
import re, sys; sys.exit(0 if re.search(rb"\r(?!\n)", open(sys.argv[1], "rb").read()) else 1)' "$tmp/tty.out"
check "tty: with a bar" grep -qE '\[[#.]{20}\]' "$tmp/tty.out"
check "tty: verified line" sh -c "tr -d '\r' <'$tmp/tty.out' | grep -q '^demo: verified: destination memory equals'"

echo "== demo --verify-source"
run verify "${small[@]}" --verify-source --codec lz4
check "verify-source: exits 0" test "$rc" = 0
check "verify-source: verified line" verified "$tmp/verify.out"

echo "== demo --device-state-pad (told in advance, and not)"
run pad "${small[@]}" --device-state-pad 3M --json
check "pad: exits 0" test "$rc" = 0
check "pad: the state and its size as told" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["source"]
sys.exit(0 if s["device_state_bytes"] == 3 * 2**20 + 64 and
         s["device_state_expected_bytes"] == 3 * 2**20 + 4096 else 1)' "$tmp/pad.out"
# The byte count is the destination's (the state's total less the padding),
# and the writers' state in it continued the source's workload.
check "pad: the destination took the writers' state off the padding" grep -qE \
	"^demo: device state: [0-9]{1,4} bytes \(the writers' state: .* continues the source, then 3145728 bytes of padding$" "$tmp/pad.err"
run unsaid "${small[@]}" --device-state-pad 1M --device-state-unsaid --json
check "unsaid: exits 0" test "$rc" = 0
check "unsaid: nothing told in advance" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["source"]
sys.exit(0 if s["device_state_bytes"] == 2**20 + 64 and s["device_state_expected_bytes"] == 0 else 1)' "$tmp/unsaid.out"

# ---- memory from an image, small writes ------------------------------------------

echo "== demo --from-image (a 32 MiB lm-mkimage image)"
"$mkimage" --size 32M --out "$tmp/a.img" --seed 3 --quiet
cp "$tmp/a.img" "$tmp/copy.img"
"$mkimage" --size 32M --out "$tmp/b.img" --seed 4 --quiet
run image --from-image "$tmp/a.img" --working-set 16M --dirty-rate 16M --write-bytes 8
check "image: exits 0" test "$rc" = 0
check "image: verified line" verified "$tmp/image.out"
check "image: the size is the file's" grep -q "^demo: 32 MiB of memory" "$tmp/image.out"
check "image: says where the memory came from" grep -q "^demo: workload loaded 32 MiB .* read from the image" "$tmp/image.out"
# Idle, the memory is the image's at the pause: the checksum follows the
# file's content, not its name or the seed.
checksum() { # checksum NAME: the verified checksum of $tmp/NAME.out
	sed -n 's/^demo: verified: .*(checksum \(0x[0-9a-f]*\))$/\1/p' "$tmp/$1.out"
}
run idle_a --from-image "$tmp/a.img" --dirty-rate 0
run idle_copy --from-image "$tmp/copy.img" --dirty-rate 0
run idle_b --from-image "$tmp/b.img" --dirty-rate 0
check "image: idle runs verified" verified "$tmp/idle_a.out"
check "image: the same content gives the same checksum ($(checksum idle_a))" \
	test -n "$(checksum idle_a)" -a "$(checksum idle_a)" = "$(checksum idle_copy)"
check "image: another image gives another checksum" test "$(checksum idle_a)" != "$(checksum idle_b)"
run image_ext --from-image "$tmp/a.img" --size 48M --dirty-rate 0
check "image --size 48M: zero-extended, verified" sh -c \
	"grep -q '^demo: workload loaded 48 MiB .* 32 MiB read from the image, the rest zero' '$tmp/image_ext.out' &&
	 grep -q '^demo: verified' '$tmp/image_ext.out'"
run image_cut --from-image "$tmp/a.img" --size 16M --dirty-rate 0
check "image --size 16M: truncated, verified" sh -c \
	"grep -q '^demo: workload loaded 16 MiB .* 16 MiB read from the image, zero' '$tmp/image_cut.out' &&
	 grep -q '^demo: verified' '$tmp/image_cut.out'"
run image_missing --from-image "$tmp/missing.img"
check "image: a missing file fails (exit 1)" test "$rc" = 1
check "image: a missing file is named with the reason" \
	grep -q "from-image .*missing.img: cannot read it: No such file" "$tmp/image_missing.err"

echo "== demo --write-bytes 8 (as QEMU's guestperf stress)"
run wb8 "${small[@]}" --write-bytes 8 --json
check "write-bytes 8: exits 0" test "$rc" = 0
check "write-bytes 8: verified at the switchover" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
ok = d["verified"] is True and d["pages_written"] > 0 and d["source"]["rounds"] >= 2
print("  pages written", d["pages_written"], "rounds", d["source"]["rounds"])
sys.exit(0 if ok else 1)' "$tmp/wb8.out"
check "write-bytes 8: the header says so" grep -q "writes of 8 bytes at a random offset" "$tmp/wb8.err"

# ---- JSON ---------------------------------------------------------------------

echo "== demo --json"
run json "${small[@]}" --json
check "json: exits 0" test "$rc" = 0
parses() { # parses FILE: one JSON document, else the parser's complaint
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>"$tmp/parse.err" ||
		{ echo "  $(tail -n 1 "$tmp/parse.err")"; return 1; }
}
check "json: stdout parses as one JSON document" parses "$tmp/json.out"
check_json() {
	parses "$tmp/json.out" || return 1
	python3 - "$tmp/json.out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
src, dst, bad = d.get("source") or {}, d.get("destination") or {}, []
print(f"  source: rounds {src.get('rounds')} downtime {src.get('downtime_ms')} ms "
      f"precopy {src.get('precopy_bytes')} downtime bytes {src.get('downtime_bytes')} "
      f"throttle {src.get('throttle_pct')}%; pages written {d.get('pages_written')}")
if d.get("verified") is not True:
    bad.append(f"verified {d.get('verified')}")
if not str(d.get("checksum", "")).startswith("0x"):
    bad.append(f"checksum {d.get('checksum')}")
for k in ("live", "dirty_pages", "remaining", "dirty_pages_rate", "bandwidth_mbps",
          "expected_downtime_ms", "downtime_ms", "precopy_bytes", "downtime_bytes",
          "throttle_pct"):
    if k not in src:
        bad.append(f"source has no {k}")
if src.get("live") is not True:
    bad.append(f"source live {src.get('live')}")
if src.get("status") != "completed" or dst.get("status") != "completed":
    bad.append(f"status {src.get('status')} / {dst.get('status')}")
if src.get("side") != "sender" or dst.get("side") != "receiver":
    bad.append(f"sides {src.get('side')} / {dst.get('side')}")
if not src.get("rounds", 0) >= 2:
    bad.append(f"rounds {src.get('rounds')}: a live migration syncs at least twice")
if src.get("total_ram") != 64 << 20 or dst.get("total_ram") != 64 << 20:
    bad.append(f"total_ram {src.get('total_ram')} / {dst.get('total_ram')}")
if src.get("transferred") != dst.get("transferred"):
    bad.append(f"transferred {src.get('transferred')} / {dst.get('transferred')}")
if not src.get("precopy_bytes", 0) > 0:
    bad.append(f"precopy_bytes {src.get('precopy_bytes')}")
if not d.get("pages_written", 0) > 0:
    bad.append(f"pages_written {d.get('pages_written')}: the workload did not write")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
}
check "json: live fields, both sides completed" check_json
check "json: the verified line goes to stderr" verified "$tmp/json.err"

# ---- a migration that cannot converge ----------------------------------------------

echo "== demo that cannot converge: 2 GiB/s of writes, 10 MiB/s link, 2 rounds"
t0=$SECONDS
run noconv "${small[@]}" --dirty-rate 2G --max-rounds 2 --on-limit fail --no-auto-converge \
	--max-bandwidth 10M
check "noconv: exits 1 ($rc)" test "$rc" = 1
check "noconv: says it did not converge" grep -q "migration failed: .*converge" "$tmp/noconv.err"
check "noconv: no verified line" not grep -q "verified" "$tmp/noconv.out" "$tmp/noconv.err"
check "noconv: the source status is failed" grep -q "^sender status: failed" "$tmp/noconv.out"
check "noconv: gave up within 60 s" test $((SECONDS - t0)) -le 60

echo "== the same with --json: an error in the JSON"
run noconvj "${small[@]}" --dirty-rate 2G --max-rounds 2 --on-limit fail --no-auto-converge \
	--max-bandwidth 10M --json
check "noconv json: exits 1" test "$rc" = 1
check "noconv json: stdout parses as one JSON document" parses "$tmp/noconvj.out"
check "noconv json: verified false with the error" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["verified"] is False and "converge" in d["error"] else 1)' "$tmp/noconvj.out"

echo "== switchover at the limit instead"
run switch "${small[@]}" --dirty-rate 1G --max-rounds 2 --on-limit switchover --no-auto-converge \
	--max-bandwidth 20M
check "switchover: exits 0" test "$rc" = 0
check "switchover: verified line" verified "$tmp/switch.out"

echo "== paced rounds, the final copy's estimate at what it may count on"
# Codec none: the channels' CPU caps the rate at 1G/s (under the sanitizers
# well below it), but not to the paced 20M/s, so the estimate only says
# "lower", never by how much.
run swbw0 "${small[@]}" --max-bandwidth 20M --max-rounds 2 --on-limit switchover --json \
	--codec none
rc0=$rc
run swbw "${small[@]}" --max-bandwidth 20M --max-rounds 2 --on-limit switchover --json \
	--codec none --switchover-bandwidth 1G
check "switchover bandwidth: both exit 0 ($rc0, $rc)" test "$rc0" = 0 -a "$rc" = 0
check "switchover bandwidth: round 1's estimate below the paced rate's" python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))["round_log"][0]["expected_downtime_ms"]
b = json.load(open(sys.argv[2]))["round_log"][0]["expected_downtime_ms"]
print("  round 1 expected: paced rate %d ms, at 1G/s %d ms" % (a, b))
sys.exit(0 if b < a else 1)' "$tmp/swbw0.out" "$tmp/swbw.out"
run swbwt "${small[@]}" --max-bandwidth 20M --max-rounds 2 --on-limit switchover \
	--switchover-bandwidth 1G
check "switchover bandwidth: the text says so" grep -q "final copy's estimate at 1 GiB/s" "$tmp/swbwt.out"

# start_slow NAME: a demo that takes seconds (20 MiB/s link) in the
# background; sets pid and child (its destination), or child empty.
start_slow() {
	"$lm" demo "${small[@]}" --max-bandwidth 20M --seed "$seed" \
		>"$tmp/$1.out" 2>"$tmp/$1.err" &
	pid=$!
	child=
	for _ in $(seq 100); do
		child=$(pgrep -P "$pid" || true)
		[ -n "$child" ] && grep -q "^round 1" "$tmp/$1.out" && break
		sleep 0.05
	done
}

echo "== the destination dies mid-migration"
start_slow dkill
check "dkill: the destination process exists" test -n "$child"
[ -n "$child" ] && kill -9 "$child"
rc=0
wait "$pid" || rc=$?
check "dkill: the source exits 1 ($rc)" test "$rc" = 1
check "dkill: the source says the migration failed" grep -q "migration failed" "$tmp/dkill.err"
check "dkill: no verified line" not grep -q "verified" "$tmp/dkill.out"

echo "== the source dies mid-migration"
start_slow skill
check "skill: the destination process exists" test -n "$child"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
gone=0
for _ in $(seq 100); do
	[ -n "$child" ] && kill -0 "$child" 2>/dev/null && [ "$(ps -o stat= -p "$child")" != Z ] ||
		{ gone=1; break; }
	sleep 0.05
done
check "skill: the destination died with the source" test "$gone" = 1

check "no demo process left running" no_children
# Under LM_SANITIZE the CLI is instrumented: any report is a failure.
check "no sanitizer report in any stderr" not grep -lE "Sanitizer|runtime error" "$tmp"/*.err

echo "test_demo: $((passed + failed)) checks, $failed failed"
[ "$failed" -eq 0 ]
