#!/usr/bin/env bash
# Static analysis of src/ and tools/, part of scripts/test.sh; fails on any
# finding and ends with a summary line per tool.
#   cppcheck 2.10: --enable=warning,style,performance,portability (and the
#     errors, always on), all but variableScope (the tree declares its
#     variables at the top of a block on purpose); a false positive is
#     suppressed where it is, with "cppcheck-suppress id ; why".
#   clang-tidy 14: the checks of .clang-tidy (the file says which and why);
#     a false positive is marked "NOLINTNEXTLINE(check)" after a comment
#     saying why.
#   clang-format 14: the files already in the tree's style stay in it
#     (FORMATTED below; scripts/format.sh FILE fixes one).
# Both analysers read the compile commands of a build directory (default:
# out/release, which scripts/build.sh release configures with
# CMAKE_EXPORT_COMPILE_COMMANDS).
#   scripts/lint.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bld=${1:-out/release}
if [ ! -f "$bld/compile_commands.json" ]; then
	echo "lint: $bld/compile_commands.json not found: run scripts/build.sh release first" >&2
	exit 2
fi
bld=$(cd "$bld" && pwd) # cppcheck matches --file-filter against absolute paths
db=$bld/compile_commands.json
for tool in cppcheck clang-tidy-14 clang-format-14; do
	command -v "$tool" >/dev/null || {
		echo "lint: $tool not found: run scripts/deps.sh test" >&2
		exit 2
	}
done
FORMATTED=(src/cpu.c src/cpu.h src/compat.h src/hash.c src/hash.h src/hash_avx2.c src/zero.c
	src/zero.h tests/test_zero.c tests/test_hash.c bench/bench_zero.c src/abi.c src/abi.h src/version.c
	tests/test_abi.c tests/install_consumer/consumer.c src/transport/seal.c tests/test_seal.c
	tests/fuzz_seal.c src/cgroup.c src/cgroup.h tests/test_cgroup.c src/transport/tcpinfo.c
	tools/devfile.c tools/devfile.h tests/test_tls_join.c tests/tls_fixture.h tests/test_packed.c
	tests/fuzz_packed.c src/wire_packed.c src/varint.h tests/wire_check.h tools/cli_num.c
	tools/cli_num.h tools/demo.h)

# This checkout's files of src/ and tools/ in the build's compile commands.
mapfile -t files < <(python3 - "$db" "$root" <<'PY'
import json, sys
db, root = sys.argv[1], sys.argv[2]
seen = sorted({e["file"] for e in json.load(open(db))
               if e["file"].startswith((root + "/src/", root + "/tools/"))})
print("\n".join(seen))
PY
)
if [ ${#files[@]} -eq 0 ]; then
	echo "lint: $db lists no file of $root/src or $root/tools (configured from another checkout?)" >&2
	exit 2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lint.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
jobs=$(nproc)

cppcheck --project="$db" --file-filter="$root/src/*" --file-filter="$root/tools/*" --std=c11 \
	--enable=warning,style,performance,portability --suppress=variableScope --inline-suppr \
	-q -j "$jobs" --template='{file}:{line}: cppcheck {severity} [{id}] {message}' \
	--error-exitcode=1 2>"$tmp/cppcheck" && rc_cppcheck=0 || rc_cppcheck=$?
n_cppcheck=$(grep -c ' cppcheck ' "$tmp/cppcheck" || true)
cat "$tmp/cppcheck"
if [ "$rc_cppcheck" -ne 0 ] && [ "$n_cppcheck" -eq 0 ]; then
	n_cppcheck=1 # it failed without a finding: count the failure itself
	echo "lint: cppcheck exited $rc_cppcheck" >&2
fi

# One clang-tidy per file, $jobs at a time; only its findings are kept.
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} sh -c \
	'clang-tidy-14 -p "$1" --quiet "$2" >"$3/tidy.$(echo "$2" | tr / _)" 2>&1 || true' \
	sh "$bld" {} "$tmp"
cat "$tmp"/tidy.* | grep -E '^/.*: (warning|error): ' | sort -u >"$tmp/tidy" || true
n_tidy=$(wc -l <"$tmp/tidy")
if [ "$n_tidy" -gt 0 ]; then
	# The findings with their context (notes, source lines).
	cat "$tmp"/tidy.* | grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Error while processing' || true
fi

n_format=0
for f in "${FORMATTED[@]}"; do
	if ! clang-format-14 --style=file "$f" | diff -u --label "$f" --label "$f (formatted)" "$f" -; then
		n_format=$((n_format + 1))
	fi
done

echo "lint: cppcheck: ${#files[@]} files, $n_cppcheck findings"
echo "lint: clang-tidy: ${#files[@]} files, $n_tidy findings"
echo "lint: clang-format: ${#FORMATTED[@]} files kept formatted, $n_format differ"
if [ "$n_cppcheck" -ne 0 ] || [ "$n_tidy" -ne 0 ] || [ "$n_format" -ne 0 ]; then
	echo "lint: FAILED" >&2
	exit 1
fi
echo "lint: clean"
