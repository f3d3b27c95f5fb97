#!/usr/bin/env bash
# examples/mini_vmm, the embedding example, against a staged install of this
# build (tests/test_install.sh: pkg-config shared and static, find_package
# with both targets, the example's own CMakeLists.txt and Makefile), each
# build run end to end in its `local` mode (source and destination over
# socketpairs, TLS with a PSK made here: the vCPU registers travel as device
# state and the destination finds them in its RAM). Then, with the static
# build, over a UNIX socket between two processes: SIGINT to the source
# mid-migration cancels it (the guest resumes, the destination fails), and
# SIGINT to a destination still waiting ends it.
#   test_example.sh BUILD_DIR
set -euo pipefail
bld=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ "${LM_INSTALL_SKIP:-}" ]; then
	echo "test_example: skipped: $LM_INSTALL_SKIP"
	exit 77
fi
work=$(mktemp -d /tmp/lm-example.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
fails=0
check() { # check WHAT COMMAND...
	local what=$1
	shift
	if "$@"; then echo "PASS: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}
printf 'vmm:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$work/psk"
chmod 600 "$work/psk"

LM_INSTALL_KEEP=$work bash "$here/test_install.sh" "$bld" "$here/../examples/mini_vmm" \
	local --psk "$work/psk" --mib 64 --seconds 0.3 >"$work/install.out" 2>&1 || true
sed 's/^/  /' "$work/install.out"
check "the example builds and migrates every way it is built" grep -q "^test_install: 0 failed" "$work/install.out"
check "six builds ran (pkg-config x2, find_package x2, CMakeLists.txt, Makefile)" \
	test "$(grep -c ': ok (' "$work/install.out")" -ge 6
vmm=$work/mini_vmm
[ -x "$vmm" ] || { echo "FAIL: no static build kept"; exit 1; }

wait_exit() { # wait_exit PID SECONDS: its exit code, 124 if still running
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1" && return 0 || return $?; }
		sleep 0.1
	done
	return 124
}

# SIGINT to the source mid-migration (16 MiB/s, ~32 MiB of data: ~2 s).
sock=$work/vmm.sock
"$vmm" dest --listen "unix:$sock" --psk "$work/psk" --mib 64 >"$work/d1.out" 2>&1 &
dpid=$!
for ((i = 0; i < 50; i++)); do [ -S "$sock" ] && break; sleep 0.1; done
"$vmm" source --to "unix:$sock" --psk "$work/psk" --mib 64 --seconds 0.2 --max-bandwidth 16 \
	>"$work/s1.out" 2>&1 &
spid=$!
sleep 1
kill -INT "$spid"
src_rc=0 && wait_exit "$spid" 10 || src_rc=$?
dst_rc=0 && wait_exit "$dpid" 10 || dst_rc=$?
sed 's/^/  source: /' "$work/s1.out" | grep -v ' round ' || true
sed 's/^/  dest: /' "$work/d1.out"
check "SIGINT mid-migration: the source exits 1 ($src_rc)" test "$src_rc" = 1
check "SIGINT mid-migration: it says cancelled and the guest resumed" \
	grep -q "cancelled.*the guest runs on here (resumed)" "$work/s1.out"
check "SIGINT mid-migration: the destination fails, hearing why ($dst_rc)" \
	sh -c "test $dst_rc = 1 && grep -q 'sender reported: cancelled' '$work/d1.out'"

# SIGINT to a destination that waits for its source.
rm -f "$sock"
"$vmm" dest --listen "unix:$sock" --psk "$work/psk" --mib 64 >"$work/d2.out" 2>&1 &
dpid=$!
sleep 0.5
kill -INT "$dpid"
dst_rc=0 && wait_exit "$dpid" 10 || dst_rc=$?
check "SIGINT to a waiting destination: it exits 1, cancelled ($dst_rc)" \
	sh -c "test $dst_rc = 1 && grep -q 'cancel' '$work/d2.out'"
echo "test_example: $fails failed"
[ "$fails" -eq 0 ]
