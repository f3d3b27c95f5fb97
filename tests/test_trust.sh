#!/usr/bin/env bash
# The security regression suite (issue "Trust"): each finding as a test,
# CLI-driven, over TCP and TLS (plus UNIX and fd transports). The attackers,
# the recording/tampering proxy and the fake peers are tests/trust_tools.py.
# Certificates are made into a temp dir by tests/tls_certs.sh.
# Usage: tests/test_trust.sh path/to/livemig path/to/lm-mkimage
set -euo pipefail
export LC_ALL=C

lm=${1:?usage: $0 path/to/livemig path/to/lm-mkimage}
mkimage=${2:?usage: $0 path/to/livemig path/to/lm-mkimage}
here=$(cd "$(dirname "$0")" && pwd)
tools=$here/trust_tools.py
[ -x "$lm" ] || { echo "FAIL: $lm is not executable"; exit 1; }
[ -x "$mkimage" ] || { echo "FAIL: $mkimage is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }
command -v openssl >/dev/null || { echo "FAIL: openssl not found (scripts/deps.sh test)"; exit 1; }

name=test_trust
. "$(dirname "$0")/shell_harness.sh"
section() { echo "== $* ($SECONDS s)"; }

# wait_exit PID SECONDS: sets rc to the job's exit status (137: killed
# after SECONDS).
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
running() { kill -0 "$1" 2>/dev/null; }
# wait_lines FILE REGEX N SECONDS: until FILE has N lines matching REGEX.
lines() { # lines FILE REGEX: how many lines match (0 for a file not there yet)
	local n
	n=$(grep -cE "$2" "$1" 2>/dev/null || true)
	echo "${n:-0}"
}
wait_lines() {
	local end=$((SECONDS + $4))
	while [ "$(lines "$1" "$2")" -lt "$3" ] && [ "$SECONDS" -lt "$end" ]; do
		sleep 0.05
	done
	[ "$(lines "$1" "$2")" -ge "$3" ]
}
has() { grep -qE "$2" "$1" || { echo "  $1 lacks /$2/:"; sed 's/^/    /' "$1" | head -8; return 1; }; }
absent() { [ ! -e "$1" ] || { echo "  $1 exists"; return 1; }; }
same() { cmp -s "$1" "$2" || { echo "  $2 differs from $1"; return 1; }; }

# start_recv NAME [options]: recv into $tmp/NAME.img, listening on $LISTEN
# (default 127.0.0.1:0) under ${WRAP[@]}; sets rpid and port (from its
# "listening on ... (port N)" line); output in $tmp/NAME.recv.{out,err}.
LISTEN=
WRAP=()
start_recv() {
	local name=$1
	shift
	"${WRAP[@]}" "$lm" recv --listen "${LISTEN:-127.0.0.1:0}" --image "$tmp/$name.img" \
		--accept-timeout 30 --timeout 10 "$@" >"$tmp/$name.recv.out" 2>"$tmp/$name.recv.err" &
	rpid=$!
	bg_pids+=("$rpid")
	port=
	if wait_lines "$tmp/$name.recv.err" 'listening on .* \(port [0-9]+\)' 1 15; then
		port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' "$tmp/$name.recv.err" | head -1)
	else
		echo "  recv $name did not listen:"
		sed 's/^/    /' "$tmp/$name.recv.err"
	fi
}
# send_to NAME ADDR [options]: sets send_rc; output $tmp/NAME.send.{out,err}.
send_to() {
	local name=$1 addr=$2
	shift 2
	send_rc=0
	timeout -k 5 60 "$lm" send --image "$src" --to "$addr" --timeout 10 "$@" \
		>"$tmp/$name.send.out" 2>"$tmp/$name.send.err" || send_rc=$?
}
# start_tool NAME ARGS...: a listening trust_tools.py command; sets tpid and
# tport (its first stdout line).
start_tool() {
	local name=$1
	shift
	python3 "$tools" "$@" >"$tmp/$name.tool.out" 2>"$tmp/$name.tool.err" &
	tpid=$!
	bg_pids+=("$tpid")
	tport=
	for _ in $(seq 200); do
		tport=$(head -1 "$tmp/$name.tool.out" 2>/dev/null || true)
		[ -n "$tport" ] && break
		sleep 0.05
	done
	[ -n "$tport" ] || { echo "  $name did not start:"; cat "$tmp/$name.tool.err"; tport=1; }
}
stop_tool() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	forget_pid "$1"
}
# stop_recv NAME: SIGTERM to a recv that is (still) waiting; its exit is
# then 143 and nothing may be left behind.
stop_recv() {
	kill -TERM "$rpid" 2>/dev/null || true
	wait_exit "$rpid" 10
}

# ---- setup -----------------------------------------------------------------------

certs=$tmp/certs
bash "$here/tls_certs.sh" "$certs" 127.0.0.1 >/dev/null
src=$tmp/src.img
"$mkimage" --size 8M --out "$src" --seed 11 >/dev/null
sum=$("$lm" checksum "$src" | cut -d' ' -f1)
RTLS=(--tls-cert "$certs/server-cert.pem" --tls-key "$certs/server-key.pem" --tls-ca "$certs/ca-cert.pem")
STLS=(--tls-cert "$certs/client-cert.pem" --tls-key "$certs/client-key.pem" --tls-ca "$certs/ca-cert.pem")
# cert_of NAME: the sender options with certificate NAME of tls_certs.sh
cert_of() { echo --tls-cert "$certs/$1-cert.pem" --tls-key "$certs/$1-key.pem" --tls-ca "$certs/ca-cert.pem"; }
REFUSED='refused [^ ]+: '

# ---- 1. an unauthenticated sender is refused, the real one then completes --------

section "1a. TLS receiver: a plaintext fake sender, another CA's cert, a not allowed cert"
start_recv c1 "${RTLS[@]}" --tls-allow sender
fs_rc=0
timeout 30 python3 "$tools" fake-sender 127.0.0.1 "${port:-1}" --image "$src" --checksum "$sum" \
	2>"$tmp/c1.fake.err" || fs_rc=$?
check "1a: the plaintext fake sender (the hijack script) fails ($fs_rc)" test "$fs_rc" != 0
check "1a: ... and is never acknowledged" not grep -q "ACK(HELLO)" "$tmp/c1.fake.err"
check "1a: ... one refusal logged" wait_lines "$tmp/c1.recv.err" "$REFUSED" 1 10
send_to c1-stranger "127.0.0.1:${port:-1}" --channels 1 $(cert_of stranger)
check "1a: a sender with another CA's certificate fails ($send_rc)" failed_cleanly "$send_rc"
check "1a: ... one more refusal logged" wait_lines "$tmp/c1.recv.err" "$REFUSED" 2 10
send_to c1-intruder "127.0.0.1:${port:-1}" --channels 1 $(cert_of intruder)
check "1a: a sender with the intruder's certificate fails ($send_rc)" failed_cleanly "$send_rc"
check "1a: ... one more refusal logged" wait_lines "$tmp/c1.recv.err" "$REFUSED" 3 10
check "1a: recv still waits after the three strangers" running "$rpid"
check "1a: exactly one log line per stranger connection" test "$(lines "$tmp/c1.recv.err" "$REFUSED")" = 3
check "1a: no image yet" absent "$tmp/c1.img"
send_to c1-real "127.0.0.1:${port:-1}" --channels 2 "${STLS[@]}"
wait_exit "$rpid" 30
check "1a: then the real sender completes (send $send_rc, recv $rc)" test "$send_rc/$rc" = 0/0
check "1a: the image verifies" same "$src" "$tmp/c1.img"
check "1a: no temp file" no_temp_files "$tmp"

section "1b. plaintext: the hijack script works (documented limitation, not secure)"
start_recv c1b
fs_rc=0
timeout 30 python3 "$tools" fake-sender 127.0.0.1 "${port:-1}" --image "$src" --checksum "$sum" \
	2>"$tmp/c1b.fake.err" || fs_rc=$?
wait_exit "$rpid" 20
echo "  NOTE: in plaintext a fake sender becomes the session (docs/security.md); this only"
echo "  shows the hijack script is a working sender, so its failure under TLS (1a) means TLS."
check "1b: control: the hijack script completes a plaintext session (fake $fs_rc, recv $rc)" \
	test "$fs_rc/$rc" = 0/0

# ---- 2. wrong credentials: refused with a clear message on both sides -----------

# refusal NAME SEND_REGEX RECV_REGEX "RECV OPTIONS" SEND OPTIONS...: recv
# logs one refusal naming the reason and keeps waiting, send fails naming
# it, no image and no temp file; recv is then stopped.
refusal() {
	local name=$1 sre=$2 rre=$3 ropts=$4
	shift 4
	# shellcheck disable=SC2086 # ropts is a word list
	start_recv "c2-$name" $ropts
	send_to "c2-$name" "127.0.0.1:${port:-1}" --channels 1 "$@"
	check "2 $name: send fails ($send_rc)" failed_cleanly "$send_rc"
	check "2 $name: send says why" has "$tmp/c2-$name.send.err" "$sre"
	check "2 $name: recv logs a refusal saying why" wait_lines "$tmp/c2-$name.recv.err" "$REFUSED.*($rre)" 1 10
	check "2 $name: recv keeps waiting" running "$rpid"
	stop_recv
	check "2 $name: recv stopped by SIGTERM ($rc)" test "$rc" = 143
	check "2 $name: no image, no temp file" eval 'absent "$tmp/c2-$name.img" && no_temp_files "$tmp"'
}
section "2. wrong credentials"
rtls="${RTLS[*]}"
refusal wrong-ca "unknown ca" "certificate verify failed|unable to get local issuer" "$rtls" \
	$(cert_of stranger)
refusal expired "certificate expired" "certificate has expired" "$rtls" $(cert_of expired)
refusal wrong-psk "PSK" "binder|PSK" "--psk-file $certs/keys.psk" --psk-file "$certs/wrong.psk"
refusal peer-name "hostname mismatch" "bad certificate" "$rtls" "${STLS[@]}" --tls-peer-name other
refusal not-allowed "not an allowed sender" "not an allowed sender" "$rtls --tls-allow sender" \
	$(cert_of intruder)
zero_pin=$(printf '%064d' 0)
refusal recv-pin "pinned" "pinned" "$rtls --tls-pin $zero_pin" "${STLS[@]}"
refusal send-pin "pinned" "pinned" "$rtls" "${STLS[@]}" --tls-pin "$zero_pin"
refusal recv-untrusted "certificate verify failed|unable to get local issuer|self-signed" "unknown ca" \
	"$rtls" --tls-cert "$certs/client-cert.pem" --tls-key "$certs/client-key.pem" \
	--tls-ca "$certs/other-ca-cert.pem"

# ---- 3. a replayed recording is refused -------------------------------------------

section "3. replay of a recorded TLS migration"
start_recv c3 "${RTLS[@]}"
start_tool c3-proxy proxy 127.0.0.1 "${port:-1}" --record "$tmp/rec3"
proxy_pid=$tpid
send_to c3 "127.0.0.1:$tport" --channels 2 "${STLS[@]}"
wait_exit "$rpid" 20
check "3: the recorded migration completed (send $send_rc, recv $rc)" test "$send_rc/$rc" = 0/0
stop_tool "$proxy_pid"
nrec=$(find "$tmp/rec3" -name 'c2s.*' -size +0 | wc -l)
check "3: the proxy recorded both channels ($nrec)" test "$nrec" = 2
rm -f "$tmp/c3.img"
start_recv c3r "${RTLS[@]}"
timeout 60 python3 "$tools" replay 127.0.0.1 "${port:-1}" "$tmp/rec3" 2>"$tmp/c3.replay.err" || true
check "3: every replayed connection is refused in its TLS handshake" \
	wait_lines "$tmp/c3r.recv.err" "${REFUSED}TLS" "$nrec" 15
check "3: recv is still waiting for a sender" running "$rpid"
stop_recv
check "3: replay: no image, no temp file" eval 'absent "$tmp/c3r.img" && no_temp_files "$tmp"'
skip "3: plaintext replay is not protected: nothing authenticates a plaintext sender" \
	"(docs/security.md: plaintext is for this host only)"

# ---- 4. a tampering proxy: a clean failure, no image --------------------------------

# tamper NAME PROXY_OPTIONS...: a TLS migration through the tampering proxy.
tamper() {
	local name=$1
	shift
	start_recv "c4-$name" "${RTLS[@]}"
	start_tool "c4-$name" proxy 127.0.0.1 "${port:-1}" --record "$tmp/rec4-$name" "$@"
	send_to "c4-$name" "127.0.0.1:$tport" --channels 2 "${STLS[@]}"
	wait_exit "$rpid" 30
	stop_tool "$tpid"
	check "4 $name: the proxy did tamper" has "$tmp/c4-$name.tool.err" "flipped"
	check "4 $name: send fails cleanly ($send_rc)" failed_cleanly "$send_rc"
	check "4 $name: recv fails cleanly ($rc)" failed_cleanly "$rc"
	check "4 $name: recv names the failed record check" has "$tmp/c4-$name.recv.err" \
		"TLS failure: sealed record: authentication failed \\(bad record mac"
	echo "  recv: $(grep -m1 -E 'failed:' "$tmp/c4-$name.recv.err")"
	check "4 $name: send names a TLS failure" has "$tmp/c4-$name.send.err" \
		"TLS failure|bad record mac|decrypt"
	check "4 $name: no image, no temp file" eval 'absent "$tmp/c4-$name.img" && no_temp_files "$tmp"'
}
section "4. tampering proxy under TLS"
tamper page-data --flip-offset 300000
# COMPLETE is one sealed record of 12 + 32 bytes (one region): length 44 + 16 (the tag).
tamper complete --flip-record-len 60

# ---- 5. a fake receiver cannot make the sender report success -------------------

section "5. fake receivers"
start_tool c5-ack fake-recv --mode ack
# --codec none: the fake knows nothing of MIXED, and codec auto (the default)
# refuses an ack without it.
send_to c5-plain-ack "127.0.0.1:$tport" --channels 2 --codec none
stop_tool "$tpid"
echo "  NOTE: in plaintext a fake receiver that acknowledges everything fools the sender"
echo "  (docs/security.md); this control shows the fake receiver is a working one."
check "5: control: plaintext sender 'succeeds' against the acknowledging fake ($send_rc)" \
	test "$send_rc" = 0
start_tool c5-nomixed fake-recv --mode ack
send_to c5-nomixed "127.0.0.1:$tport" --channels 2
stop_tool "$tpid"
check "5: codec auto vs a receiver whose ack lacks MIXED fails ($send_rc)" failed_cleanly "$send_rc"
check "5: ... saying so" has "$tmp/c5-nomixed.send.err" "lacks MIXED"
start_tool c5-echo fake-recv --mode echo
send_to c5-echo "127.0.0.1:$tport" --channels 2 "${STLS[@]}"
stop_tool "$tpid"
check "5: TLS sender vs an echoing TCP server fails ($send_rc)" failed_cleanly "$send_rc"
check "5: ... in the TLS handshake" has "$tmp/c5-echo.send.err" "TLS"
start_tool c5-stranger fake-recv --mode ack --cert "$certs/stranger-cert.pem" \
	--key "$certs/stranger-key.pem" --ca "$certs/ca-cert.pem"
send_to c5-stranger "127.0.0.1:$tport" --channels 2 "${STLS[@]}"
stop_tool "$tpid"
check "5: TLS sender vs a fake with another CA's certificate fails ($send_rc)" failed_cleanly "$send_rc"
check "5: ... certificate verify failed" has "$tmp/c5-stranger.send.err" \
	"certificate verify failed|peer certificate refused: unable to get local issuer"
check "5: ... the fake never got a hello" not grep -q "ACK(HELLO)" "$tmp/c5-stranger.tool.err"
start_tool c5-name fake-recv --mode ack --cert "$certs/intruder-cert.pem" \
	--key "$certs/intruder-key.pem" --ca "$certs/ca-cert.pem"
send_to c5-name "127.0.0.1:$tport" --channels 2 "${STLS[@]}"
stop_tool "$tpid"
check "5: TLS sender vs a fake with our CA but another name fails ($send_rc)" failed_cleanly "$send_rc"
check "5: ... a name mismatch" has "$tmp/c5-name.send.err" "mismatch"
check "5: ... the fake never got a hello" not grep -q "ACK(HELLO)" "$tmp/c5-name.tool.err"

# ---- 6. garbage, HTTP and port probes before the session ---------------------------

strangers() { # strangers MODE RECV_OPTS... -- SEND_OPTS...
	local mode=$1 ropts=() sopts=()
	shift
	while [ "$1" != -- ]; do ropts+=("$1"); shift; done
	shift
	sopts=("$@")
	start_recv "c6-$mode" "${ropts[@]}"
	local k n=0
	for k in garbage http probe garbage probe; do
		timeout 30 python3 "$tools" junk 127.0.0.1 "${port:-1}" "$k" 2>>"$tmp/c6-$mode.junk.err" || true
		n=$((n + 1))
		wait_lines "$tmp/c6-$mode.recv.err" "$REFUSED" "$n" 12 || true
	done
	check "6 $mode: recv still waits after garbage, HTTP and probes" running "$rpid"
	check "6 $mode: one log line per stranger connection ($(lines "$tmp/c6-$mode.recv.err" "$REFUSED") of $n)" \
		test "$(lines "$tmp/c6-$mode.recv.err" "$REFUSED")" = "$n"
	send_to "c6-$mode" "127.0.0.1:${port:-1}" --channels 2 "${sopts[@]}"
	wait_exit "$rpid" 30
	check "6 $mode: then the real migration completes (send $send_rc, recv $rc)" test "$send_rc/$rc" = 0/0
	check "6 $mode: the image verifies" same "$src" "$tmp/c6-$mode.img"
}
section "6. strangers before the session"
strangers plain --
strangers tls "${RTLS[@]}" -- "${STLS[@]}"

# ---- 7. slowloris on every slot ---------------------------------------------------

slowloris() { # slowloris MODE RECV_OPTS... -- SEND_OPTS...
	local mode=$1 ropts=() sopts=() t0 targs=()
	shift
	while [ "$1" != -- ]; do ropts+=("$1"); shift; done
	shift
	sopts=("$@")
	[ "$mode" = tls ] && targs=(--tls)
	# 48 connections, three times the 16 handshake slots, each sending a
	# byte every 0.3 s, which keeps any per-read timeout happy for ever:
	# only a deadline for the whole handshake (1 s here) evicts them.
	start_recv "c7-$mode" --handshake-timeout 1 "${ropts[@]}"
	python3 "$tools" trickle 127.0.0.1 "${port:-1}" --conns 48 --sources 12 --duration 60 \
		--interval 0.3 "${targs[@]}" >"$tmp/c7-$mode.trickle.out" 2>"$tmp/c7-$mode.trickle.err" &
	local tr=$!
	bg_pids+=("$tr")
	sleep 1
	t0=$SECONDS
	send_to "c7-$mode" "127.0.0.1:${port:-1}" --channels 2 "${sopts[@]}"
	wait_exit "$rpid" 40
	local took=$((SECONDS - t0))
	kill -TERM "$tr" 2>/dev/null || true
	wait "$tr" 2>/dev/null || true
	forget_pid "$tr"
	echo "  $(cat "$tmp/c7-$mode.trickle.out"); the real migration took $took s"
	check "7 $mode: the real sender completes under 48 trickling connections (send $send_rc, recv $rc)" \
		test "$send_rc/$rc" = 0/0
	check "7 $mode: the image verifies" same "$src" "$tmp/c7-$mode.img"
	check "7 $mode: tricklers were evicted or refused ($(lines "$tmp/c7-$mode.recv.err" "$REFUSED") log lines)" \
		test "$(lines "$tmp/c7-$mode.recv.err" "$REFUSED")" -ge 16
	check "7 $mode: within 30 s ($took s)" test "$took" -le 30
}
section "7. slowloris"
slowloris plain --
slowloris tls "${RTLS[@]}" -- "${STLS[@]}"

# ---- 8. an oversize announcement, refused before any allocation ---------------------

# oversize NAME [recv options]: a plaintext fake sender announcing 1 TiB.
oversize() {
	local name=$1
	shift
	WRAP=(/usr/bin/time -v)
	start_recv "c8-$name" --accept-timeout 5 "$@"
	WRAP=()
	fs_rc=0
	timeout 30 python3 "$tools" fake-sender 127.0.0.1 "${port:-1}" --announce $((1 << 40)) \
		--name big.img 2>"$tmp/c8-$name.fake.err" || fs_rc=$?
	wait_exit "$rpid" 20
	local hwm
	hwm=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p' "$tmp/c8-$name.recv.err")
	echo "  recv exit $rc, peak RSS ${hwm:-?} KiB; the fake sender saw: $(tail -1 "$tmp/c8-$name.fake.err")"
	check "8 $name: the 1 TiB announcement is refused ($fs_rc)" test "$fs_rc" = 1
	check "8 $name: the refusal names the limit" has "$tmp/c8-$name.recv.err" "limit"
	check "8 $name: the fake sender is told" has "$tmp/c8-$name.fake.err" "refused.*ERROR"
	check "8 $name: recv's peak RSS under 64 MiB (${hwm:-?} KiB)" test "${hwm:-999999}" -lt 65536
	check "8 $name: no image, no temp file" eval 'absent "$tmp/c8-$name.img" && no_temp_files "$tmp"'
}
section "8. oversize announcements"
oversize max-size --max-size 64M
avail=$(df -B1 --output=avail "$tmp" | tail -1 | tr -d ' ')
if [ "$avail" -lt $((1 << 40)) ]; then
	oversize free-space
else
	skip "8 free-space: $tmp has $avail bytes free, not less than the 1 TiB announced"
fi

# ---- 9. signal cleanup under TLS (the rest is in test_hygiene.sh) --------------------

section "9. SIGTERM to recv during a TLS migration"
start_recv c9 "${RTLS[@]}"
# Slow enough that the migration is still running when the signal comes,
# whatever codec auto would pick on a loaded machine: raw pages (about
# 4 MiB of the 8) at 250 kB/s a connection take some 8 s.
start_tool c9 proxy 127.0.0.1 "${port:-1}" --record "$tmp/rec9" --rate 250000
timeout -k 5 60 "$lm" send --image "$src" --to "127.0.0.1:$tport" --timeout 10 --channels 2 \
	--codec none "${STLS[@]}" >"$tmp/c9.send.out" 2>"$tmp/c9.send.err" &
spid=$!
bg_pids+=("$spid")
wait_lines "$tmp/c9.recv.err" "receiving" 1 15 || true
sleep 1
tmpfile_seen=$(find "$tmp" -name '.c9.img.livemig-*' | wc -l)
check "9: mid-migration: the temp file exists" test "$tmpfile_seen" = 1
kill -TERM "$rpid"
wait_exit "$rpid" 15
check "9: recv exits 143 on SIGTERM ($rc)" test "$rc" = 143
wait_exit "$spid" 30
stop_tool "$tpid"
check "9: send fails cleanly ($rc)" failed_cleanly "$rc"
check "9: send hears why" has "$tmp/c9.send.err" "cancel"
check "9: no image, no temp file" eval 'absent "$tmp/c9.img" && no_temp_files "$tmp"'

# ---- 10. UNIX and fd transports end to end --------------------------------------------

section "10. unix: and fd: transports"
unix_mig() { # unix_mig NAME [options for both sides]
	local name=$1 sock=$tmp/$1.sock
	shift
	LISTEN=unix:$sock
	start_recv "c10-$name" "$@"
	LISTEN=
	check "10 $name: the socket file is 0600 while listening" test "$(stat -c %a "$sock" 2>/dev/null)" = 600
	send_to "c10-$name" "unix:$sock" --channels 2 "$@"
	wait_exit "$rpid" 30
	check "10 $name: migration completes (send $send_rc, recv $rc)" test "$send_rc/$rc" = 0/0
	check "10 $name: the image verifies" same "$src" "$tmp/c10-$name.img"
	check "10 $name: the socket file is removed" absent "$sock"
}
unix_mig unix-plain
unix_mig unix-psk --psk-file "$certs/keys.psk"
check "10 unix-psk: the session was TLS" has "$tmp/c10-unix-psk.send.out" "security: TLS"
fd_mig() { # fd_mig NAME "RECV OPTS" "SEND OPTS"
	local name=$1 out
	out=$(timeout 120 python3 "$tools" fdmig "$lm" 2 --out "$tmp/c10-$name" \
		--recv "--image $tmp/c10-$name.img --timeout 10 $2" --send "--image $src --timeout 10 $3")
	check "10 $name: migration over socketpairs completes (recv, send: $out)" test "$out" = "0 0"
	check "10 $name: the image verifies" same "$src" "$tmp/c10-$name.img"
}
fd_mig fd-plain "" ""
fd_mig fd-tls "${RTLS[*]}" "${STLS[*]} --tls-peer-name receiver"
check "10 fd-tls: the session was TLS" has "$tmp/c10-fd-tls.send.out" "security: TLS"

# ---- 11. no plaintext of the image in a TLS migration's traffic -------------------------

section "11. the sentinel"
sentinel=LIVEMIG-SENTINEL-7c1f
python3 - "$tmp/sentinel.img" "$sentinel" <<'EOF'
import sys
out, word = sys.argv[1], sys.argv[2].encode()
with open(out, "wb") as f:
    for page in range(1024):  # 4 MiB; every page differs and holds the word 100 times
        body = b"".join(word + b"%06d:%02d;" % (page, i) for i in range(100))
        f.write(body.ljust(4096, b"."))
EOF
sentinel_run() { # sentinel_run NAME [options]
	local name=$1
	shift
	start_recv "c11-$name" "$@"
	start_tool "c11-$name" proxy 127.0.0.1 "${port:-1}" --record "$tmp/rec11-$name"
	src=$tmp/sentinel.img send_to "c11-$name" "127.0.0.1:$tport" --channels 2 --codec none "$@"
	wait_exit "$rpid" 30
	stop_tool "$tpid"
	check "11 $name: migration through the recording proxy completes (send $send_rc, recv $rc)" \
		test "$send_rc/$rc" = 0/0
	hits=$(cat "$tmp/rec11-$name"/* 2>/dev/null | { grep -aoF "$sentinel" || true; } | wc -l)
}
sentinel_run tls "${RTLS[@]}"
tls_hits=$hits
sentinel_run plain
echo "  the sentinel in the recorded bytes: TLS $tls_hits times, plaintext $hits times"
check "11: not one sentinel in the TLS recording" test "$tls_hits" = 0
check "11: control: the plaintext recording shows it (>= 102400)" test "$hits" -ge 102400
check "11: images verify" eval 'same "$tmp/sentinel.img" "$tmp/c11-tls.img" &&
	same "$tmp/sentinel.img" "$tmp/c11-plain.img"'

# ---- 12. setup time of 8 TLS channels ------------------------------------------------

section "12. setup of 8 TLS channels"
start_recv c12 "${RTLS[@]}"
send_to c12 "127.0.0.1:${port:-1}" --channels 8 --json "${STLS[@]}"
wait_exit "$rpid" 30
check "12: migration completes (send $send_rc, recv $rc)" test "$send_rc/$rc" = 0/0
read -r setup resumed < <(python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).read())
print(j.get("setup_time_ms", -1), j.get("tls_resumed", -1))' "$tmp/c12.send.out" 2>/dev/null ||
	echo "-1 -1")
echo "  setup_time_ms $setup (8 TLS channels, loopback; the 30 ms target is a benchmark's)"
check "12: setup under 500 ms ($setup ms)" python3 -c "import sys; sys.exit(not 0 <= $setup < 500)"
check "12: 7 of 8 channels resumed channel 0's session ($resumed)" test "$resumed" = 7

# ---- summary ---------------------------------------------------------------------------

check "no sanitizer report in any livemig stderr" \
	not grep -lE "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:" "$tmp"/*.err
echo "test_trust: $passed passed, $failed failed, $skipped skipped ($SECONDS s)"
[ "$failed" -eq 0 ]
