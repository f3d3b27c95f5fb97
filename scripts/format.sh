#!/usr/bin/env bash
# Formats the given C files with the tree's .clang-format (clang-format 14,
# Debian's clang-format package), or with --check reports which of them
# differ from it (and how) and fails. The tree is not formatted as a whole:
# run it on the files you touch.
#   scripts/format.sh [--check] file.c [file.h ...]
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = --check ]; then
	check=1
	shift
fi
if [ $# -eq 0 ]; then
	echo "usage: scripts/format.sh [--check] file..." >&2
	exit 2
fi
cf=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$cf" ]; then
	echo "format: clang-format not found: apt-get install clang-format" >&2
	exit 2
fi
bad=0
for f in "$@"; do
	if [ ! -f "$f" ]; then
		echo "format: $f: no such file" >&2
		exit 2
	fi
	if [ $check -eq 0 ]; then
		"$cf" --style=file -i "$f"
	elif ! "$cf" --style=file "$f" | diff -u --label "$f" --label "$f (formatted)" "$f" -; then
		bad=$((bad + 1))
	fi
done
if [ $check -eq 1 ]; then
	if [ $bad -ne 0 ]; then
		echo "format: $bad of $# files differ from .clang-format (scripts/format.sh FILE... fixes them)" >&2
		exit 1
	fi
	echo "format: $# files match .clang-format"
fi
