#!/usr/bin/env bash
# Checks lm-mkimage: size, determinism, argument validation, and that the
# default image has the statistics of a real guest's RAM as lm-imgstat
# measures them (zero pages, duplicates, deflate-1 and zstd-1 ratios).
# Usage: tests/test_mkimage.sh path/to/lm-mkimage [path/to/lm-imgstat]
set -u

bin=${1:?usage: $0 path/to/lm-mkimage [path/to/lm-imgstat]}
stat=${2:-$(dirname "$bin")/lm-imgstat}
[ -x "$bin" ] || { echo "FAIL: $bin is not executable"; exit 1; }
[ -x "$stat" ] || { echo "FAIL: $stat is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_mkimage.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0
size=$((16 * 1024 * 1024))

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

echo "== generating a 16 MiB image (seed 1)"
if ! "$bin" --size 16M --out "$tmp/a.img" --seed 1; then
	echo "FAIL: lm-mkimage exited non-zero"
	exit 1
fi

actual=$(stat -c %s "$tmp/a.img")
if [ "$actual" -eq "$size" ]; then
	pass "size is $size bytes"
else
	fail "size is $actual bytes, want $size"
fi

leftover=$(find "$tmp" -name 'a.img.tmp.*' | wc -l)
if [ "$leftover" -eq 0 ]; then pass "no temp file left behind"; else fail "temp file left behind"; fi

# Zero runs are written as holes; informational only, as some file systems
# (or copies) do not keep holes.
alloc=$(( $(stat -c %b "$tmp/a.img") * $(stat -c %B "$tmp/a.img") ))
echo "INFO: allocated $alloc of $size bytes (sparse if smaller)"

# An independent count (Python, SHA-1) of zero pages and of pages equal to an
# earlier page, to check lm-imgstat's exact duplicate count.
read -r pages zero nonzero dups < <(python3 - "$tmp/a.img" <<'EOF'
import hashlib, sys
PAGE = 4096
zero_page = bytes(PAGE)
seen = set()
pages = zero = dups = 0
with open(sys.argv[1], "rb") as img:
    while True:
        page = img.read(PAGE)
        if not page:
            break
        pages += 1
        if page == zero_page:
            zero += 1
            continue
        digest = hashlib.sha1(page).digest()
        if digest in seen:
            dups += 1
        seen.add(digest)
print(pages, zero, pages - zero, dups)
EOF
)
echo "INFO: pages=$pages zero=$zero nonzero=$nonzero duplicates=$dups"
"$stat" "$tmp/a.img" >"$tmp/a.stat" || fail "lm-imgstat exited non-zero"
sed 's/^/INFO: /' "$tmp/a.stat"
# stat_of FILE NAME: the value on NAME's line of lm-imgstat's output;
# count_of: the page count after it.
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
count_of() { awk -v k="$2" '$1 == k { print substr($3, 2) }' "$1"; }
if [ "$(count_of "$tmp/a.stat" zero)" = "$zero" ] &&
	[ "$(count_of "$tmp/a.stat" duplicate)" = "$dups" ]; then
	pass "lm-imgstat counts the same zero and duplicate pages as SHA-1 ($zero, $dups)"
else
	fail "lm-imgstat disagrees with SHA-1: zero $zero, duplicates $dups"
fi

between() { # between VALUE LOW HIGH
	python3 -c 'import sys; v, lo, hi = map(float, sys.argv[1:]); sys.exit(0 if lo <= v <= hi else 1)' "$@"
}
bound() { # bound STATFILE NAME LOW HIGH DESCRIPTION
	local v
	v=$(stat_of "$1" "$2")
	if [ -n "$v" ] && between "$v" "$3" "$4"; then
		pass "$5 $v within $3..$4"
	else
		fail "$5 '${v}' not within $3..$4"
	fi
}

# The bounds of a real Linux 6.1 guest's 1 GiB of RAM (docs/benchmarks.md,
# "Corpus"). A 16 MiB image has more noise: looser ratio bounds there.
bound "$tmp/a.stat" zero 0.45 0.49 "16 MiB: zero-page fraction"
bound "$tmp/a.stat" duplicate 0.42 0.50 "16 MiB: duplicate fraction of non-zero pages"
bound "$tmp/a.stat" deflate1 2.7 3.7 "16 MiB: per-page deflate-1 ratio"
bound "$tmp/a.stat" zstd1 3.0 4.4 "16 MiB: zstd-1 ratio over 512 KiB packets"

echo "== a default 256 MiB image against the guest bounds"
if "$bin" --size 256M --out "$tmp/g.img" --quiet && "$stat" "$tmp/g.img" >"$tmp/g.stat"; then
	sed 's/^/INFO: /' "$tmp/g.stat"
	bound "$tmp/g.stat" zero 0.45 0.49 "zero-page fraction"
	bound "$tmp/g.stat" duplicate 0.42 0.50 "duplicate fraction of non-zero pages"
	bound "$tmp/g.stat" deflate1 3.0 3.4 "per-page deflate-1 ratio"
	bound "$tmp/g.stat" zstd1 3.4 4.0 "zstd-1 ratio over 512 KiB packets"
else
	fail "256 MiB image or its statistics failed"
fi
rm -f "$tmp/g.img"

echo "== --mix classic and explicit fractions"
"$bin" --size 16M --out "$tmp/c.img" --mix classic --quiet && "$stat" "$tmp/c.img" >"$tmp/c.stat" ||
	fail "--mix classic failed"
bound "$tmp/c.stat" zero 0.449 0.451 "classic: zero-page fraction"
bound "$tmp/c.stat" duplicate 0.345 0.355 "classic: duplicate fraction"
# A fraction given wins over the mix's, before or after --mix.
"$bin" --zero 0.30 --size 16M --out "$tmp/c.img" --mix classic --dup 0.2 --quiet &&
	"$stat" "$tmp/c.img" >"$tmp/c.stat" || fail "--zero with --mix failed"
bound "$tmp/c.stat" zero 0.299 0.301 "--zero 0.30 --mix classic: zero-page fraction"
bound "$tmp/c.stat" duplicate 0.195 0.205 "--dup 0.2: duplicate fraction"
rm -f "$tmp/c.img"

echo "== determinism"
"$bin" --size 16M --out "$tmp/b.img" --seed 1 --quiet || fail "second run (seed 1) exited non-zero"
if cmp -s "$tmp/a.img" "$tmp/b.img"; then
	pass "same seed gives an identical file"
else
	fail "same seed gives a different file"
fi
"$bin" --size 16M --out "$tmp/c.img" --seed 2 --quiet || fail "run with seed 2 exited non-zero"
if cmp -s "$tmp/a.img" "$tmp/c.img"; then
	fail "another seed gives the same file"
else
	pass "another seed gives a different file"
fi

echo "== argument validation"
expect_error() { # expect_error DESCRIPTION ARGS...
	local what=$1
	shift
	if "$bin" "$@" --out "$tmp/bad.img" 2>"$tmp/err"; then
		fail "$what: exited 0"
	elif [ ! -s "$tmp/err" ]; then
		fail "$what: no error message"
	elif [ -e "$tmp/bad.img" ]; then
		fail "$what: output file created"
	else
		pass "$what rejected: $(head -n 1 "$tmp/err")"
	fi
}
expect_error "--size 0" --size 0
expect_error "--zero 2" --size 16M --zero 2
expect_error "--size not a page multiple" --size 5000
expect_error "--page-size 3000" --size 16M --page-size 3000
expect_error "--zero 0.6 --incompressible 0.5" --size 16M --zero 0.6 --incompressible 0.5
expect_error "--mix bogus" --size 16M --mix bogus
expect_error "--heap 1.5" --size 16M --heap 1.5

echo "== lm-imgstat errors"
if "$stat" "$tmp/missing.img" 2>"$tmp/err"; then
	fail "lm-imgstat on a missing file exited 0"
else
	pass "lm-imgstat on a missing file: $(head -n 1 "$tmp/err")"
fi
head -c 5000 /dev/zero >"$tmp/odd.img"
if "$stat" "$tmp/odd.img" 2>"$tmp/err"; then
	fail "lm-imgstat on a file of 5000 bytes exited 0"
else
	pass "lm-imgstat on a partial page: $(head -n 1 "$tmp/err")"
fi

if [ "$failures" -eq 0 ]; then
	echo "ALL PASSED"
	exit 0
fi
echo "$failures check(s) FAILED"
exit 1
