#!/usr/bin/env bash
# Checks lm-mkimage: size, planned page fractions, determinism, argument
# validation and a compression ratio typical of real guest memory.
# Usage: tests/test_mkimage.sh path/to/lm-mkimage
set -u

bin=${1:?usage: $0 path/to/lm-mkimage}
[ -x "$bin" ] || { echo "FAIL: $bin is not executable"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }
command -v gzip >/dev/null || { echo "FAIL: gzip not found"; exit 1; }

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

# Page statistics: zero pages, non-zero pages equal to an earlier page, and
# the non-zero pages concatenated for the compression check.
read -r pages zero nonzero dups < <(python3 - "$tmp/a.img" "$tmp/nonzero.bin" <<'EOF'
import hashlib, sys
PAGE = 4096
zero_page = bytes(PAGE)
seen = set()
pages = zero = dups = 0
with open(sys.argv[1], "rb") as img, open(sys.argv[2], "wb") as nz:
    while True:
        page = img.read(PAGE)
        if not page:
            break
        pages += 1
        if page == zero_page:
            zero += 1
            continue
        nz.write(page)
        digest = hashlib.sha1(page).digest()
        if digest in seen:
            dups += 1
        seen.add(digest)
print(pages, zero, pages - zero, dups)
EOF
)
echo "INFO: pages=$pages zero=$zero nonzero=$nonzero duplicates=$dups"

within() { # within VALUE TARGET TOLERANCE
	python3 -c 'import sys; v, t, e = map(float, sys.argv[1:]); sys.exit(0 if abs(v - t) <= e else 1)' "$@"
}

zfrac=$(python3 -c "print(round($zero / $pages, 4))")
if within "$zfrac" 0.45 0.01; then
	pass "zero-page fraction $zfrac within 0.45 +- 0.01"
else
	fail "zero-page fraction $zfrac not within 0.45 +- 0.01"
fi

dfrac=$(python3 -c "print(round($dups / $nonzero, 4))")
if within "$dfrac" 0.35 0.02; then
	pass "duplicate fraction of non-zero pages $dfrac within 0.35 +- 0.02"
else
	fail "duplicate fraction of non-zero pages $dfrac not within 0.35 +- 0.02"
fi

# Real guest memory (code, text, some compressed data) compresses roughly
# 2x to 6x with a fast compressor; random data would be ~1x, text alone >6x.
raw=$(stat -c %s "$tmp/nonzero.bin")
packed=$(gzip -1 -c "$tmp/nonzero.bin" | wc -c)
ratio=$(python3 -c "print(round($raw / $packed, 2))")
if python3 -c "import sys; sys.exit(0 if 1.7 <= $ratio <= 6.0 else 1)"; then
	pass "non-zero part compresses ${ratio}x with gzip -1 (want 1.7x..6x)"
else
	fail "non-zero part compresses ${ratio}x with gzip -1 (want 1.7x..6x)"
fi

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

if [ "$failures" -eq 0 ]; then
	echo "ALL PASSED"
	exit 0
fi
echo "$failures check(s) FAILED"
exit 1
