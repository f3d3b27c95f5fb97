#!/usr/bin/env bash
# The whole test suite: the ASan+UBSan build (clang) with ~20 s per libFuzzer
# target, then the release build (gcc -Werror). Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
echo "== building (release: gcc -Werror; asan: clang ASan+UBSan + libFuzzer)"
scripts/build.sh release
scripts/build.sh asan
echo "== ASan + UBSan suite, fuzzers included"
(cd out/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest --output-on-failure)
echo "== release suite"
(cd out/release && ctest --output-on-failure)
