# Sourced by the shell tests (test_cli, test_hygiene, test_trust,
# test_progress), never run: the one copy of their scratch directory, the
# background jobs killed at exit, and the PASS/FAIL counting.
#   name=test_x; . "$(dirname "$0")/shell_harness.sh"
# gives $tmp (removed at exit), bg_pids (add a job's pid; forget_pid once
# it is reaped), passed/failed/skipped with pass, fail, skip, check and not,
# and no_temp_files and failed_cleanly.
# A test with more to undo at exit defines harness_cleanup before sourcing.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
bg_pids=()
cleanup() {
	local p
	for p in "${bg_pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if declare -F harness_cleanup >/dev/null; then harness_cleanup; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
forget_pid() { # a reaped job; its pid may be reused, never kill it later
	local p keep=()
	for p in "${bg_pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	bg_pids=("${keep[@]}")
}

passed=0
failed=0
skipped=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() { echo "SKIP: $*"; skipped=$((skipped + 1)); }
check() { # check DESCRIPTION COMMAND...: passes when COMMAND succeeds
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
not() { ! "$@"; }
no_temp_files() { # no_temp_files DIR: no livemig temporary file left in DIR
	local left
	left=$(find "$1" -name '*.livemig-*')
	[ -z "$left" ] || { echo "  left behind: $left"; return 1; }
}
# failed_cleanly RC...: each non-zero, and neither a crash (SIGBUS 135,
# SIGSEGV 139, SIGABRT 134) nor a kill by the test or timeout.
failed_cleanly() {
	local rc
	for rc in "$@"; do
		[ "$rc" != 0 ] && [ "$rc" -lt 124 ] || return 1
	done
}
