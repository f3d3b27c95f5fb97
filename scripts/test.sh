#!/usr/bin/env bash
# The whole test suite: static analysis (scripts/lint.sh: cppcheck,
# clang-tidy, clang-format), the ASan+UBSan build (clang) with ~20 s per
# libFuzzer target (two at once), the ThreadSanitizer build (clang, every test, no
# fuzzers), then the release build (gcc -Werror). Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
echo "== building (release: gcc -Werror; asan: clang ASan+UBSan + libFuzzer; tsan: clang TSan)"
scripts/build.sh release
scripts/build.sh asan
scripts/build.sh tsan
echo "== static analysis (cppcheck, clang-tidy, clang-format)"
scripts/lint.sh out/release
# The fuzzers two at a time (each is one busy thread with a fixed time
# budget, nothing timed in them), then the tests one at a time (they time
# out stalls and measure links, so they get the machine to themselves).
echo "== ASan + UBSan: the fuzzers"
(cd out/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest -L fuzz -j2 --output-on-failure)
echo "== ASan + UBSan suite"
(cd out/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest -LE fuzz --output-on-failure)
# No suppressions: nothing third-party has needed one. The races livemig has
# by contract (a live workload writing the pages the sender reads) are
# annotated on that memory in the code (src/tsan.h), not suppressed here.
echo "== ThreadSanitizer suite"
(cd out/tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	ctest --output-on-failure)
echo "== release suite"
(cd out/release && ctest --output-on-failure)
