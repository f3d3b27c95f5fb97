#!/usr/bin/env bash
# The shared library exports the API and nothing else:
#   test_symbols.sh LIBLIVEMIG.so include/livemig.h
# every defined dynamic symbol starts with lm_ (never lm__), and every
# function the header declares (LM_API ... lm_xxx(...)) is among them.
set -euo pipefail
lib=$1 header=$2
fails=0
fail() { echo "test_symbols: FAIL: $*"; fails=$((fails + 1)); }
if ! command -v nm >/dev/null; then
	echo "test_symbols: skipped: nm not installed (binutils)"
	exit 77
fi
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = liblivemig.so.0 ] || fail "SONAME is '$soname', not liblivemig.so.0"
# Functions only (T); data or anything else exported is reported too.
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)
for sym in $exported; do
	case $sym in
	lm__*) fail "internal symbol exported: $sym (give it no LM_API, keep it lm__)" ;;
	lm_*) ;;
	_init | _fini) ;; # the ELF constructors' entry points the linker adds
	__start___sancov_* | __stop___sancov_*) ;; # LM_FUZZ: the coverage sections' bounds
	*) fail "symbol outside the lm_ namespace exported: $sym" ;;
	esac
done
declared=$(sed -n 's/^LM_API[^(]*[ *]\(lm_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u)
[ -n "$declared" ] || fail "no LM_API function found in $header"
for fn in $declared; do
	grep -qx "$fn" <<<"$exported" || fail "$fn is declared in livemig.h but not exported (LM_API?)"
done
# A function declared without LM_API would be hidden: every lm_ prototype
# at the start of a line must carry it.
while read -r line; do
	fail "declared without LM_API (so not exported): $line"
done < <(grep -E '^(const |unsigned |struct |enum )?[a-z_0-9]+ \**lm_[a-z0-9_]+\(' "$header" || true)
echo "test_symbols: $(wc -w <<<"$exported") exported, $(wc -w <<<"$declared") declared, $fails failed"
[ "$fails" -eq 0 ]
