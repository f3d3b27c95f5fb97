#!/usr/bin/env bash
# The man pages cover what they document and render cleanly:
#   test_man.sh LIVEMIG_CLI DOCS_MAN_DIR include/livemig.h
#  - every subcommand `livemig --help` lists has a section in livemig.1;
#  - every option the help of each subcommand prints appears in livemig.1;
#  - every function, LM_*_INIT initialiser and LM_E* error code the header
#    declares appears in livemig.3;
#  - groff (groff-base, scripts/deps.sh test) renders both without warnings.
# Options or functions added later fail here, named with the page to fix.
set -euo pipefail
cli=$1 man=$2 header=$3
fails=0
fail() { echo "test_man: FAIL: $*"; fails=$((fails + 1)); }
# The pages' text with roff's escaped hyphens as plain ones.
page1=$(sed 's/\\-/-/g' "$man/livemig.1")
page3=$(sed 's/\\-/-/g' "$man/livemig.3")
has() { # text word: word appears, not as part of a longer name
	grep -qE -- "(^|[^A-Za-z0-9_-])$2([^A-Za-z0-9_-]|\$)" <<<"$1"
}

subs=$("$cli" --help | sed -n 's/^ *livemig \([a-z][a-z0-9-]*\).*/\1/p' | sort -u)
[ -n "$subs" ] || fail "no subcommand found in 'livemig --help'"
nopt=0
for sub in "" $subs; do
	if [ -n "$sub" ] && ! grep -qE "^\.SS \"?$sub\"?\$" "$man/livemig.1"; then
		fail "subcommand '$sub' (livemig --help) has no section (.SS $sub) in livemig.1"
	fi
	help=$("$cli" $sub --help 2>&1 || true)
	for opt in $(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u); do
		nopt=$((nopt + 1))
		has "$page1" "$opt" ||
			fail "option $opt of 'livemig ${sub:+$sub }--help' is missing from docs/man/livemig.1"
	done
done

fns=$(sed -n 's/^LM_API[^(]*[ *]\(lm_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u)
[ -n "$fns" ] || fail "no LM_API function found in $header"
for fn in $fns; do
	has "$page3" "$fn" || fail "function $fn (include/livemig.h) is missing from docs/man/livemig.3"
done
for m in $(grep -oE 'LM_[A-Z][A-Z_]*_INIT\b' "$header" | sort -u); do
	has "$page3" "$m" || fail "initialiser $m (include/livemig.h) is missing from docs/man/livemig.3"
done

for code in $(sed -n 's/^[[:space:]]*\(LM_E[A-Z]*\) = .*/\1/p' "$header"); do
	has "$page3" "$code" || fail "error code $code (include/livemig.h) is missing from docs/man/livemig.3"
done
if command -v groff >/dev/null; then
	for p in livemig.1 livemig.3; do
		out=$(groff -man -Tutf8 -ww -z "$man/$p" 2>&1) || fail "groff fails on $p"
		[ -z "$out" ] || fail "groff warns on $p: $out"
	done
else
	echo "test_man: rendering not checked: groff not installed (groff-base, scripts/deps.sh test)"
fi
if command -v mandoc >/dev/null; then
	for p in livemig.1 livemig.3; do
		out=$(mandoc -T lint -W warning "$man/$p" 2>&1) || fail "mandoc -T lint on $p: $out"
	done
fi
echo "test_man: $(wc -w <<<"$subs") subcommands, $nopt options, $(wc -w <<<"$fns") functions checked, $fails failed"
[ "$fails" -eq 0 ]
