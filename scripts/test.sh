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
# budget, nothing timed in them), then the tests two at a time: most of
# them wait on sockets and timeouts, and none asserts a wall-clock speed;
# the two that measure the CPUs left over (codec auto's picks, the computed
# throttle) are RUN_SERIAL in tests/CMakeLists.txt. LM_TEST_JOBS=1 runs
# them one at a time.
jobs=${LM_TEST_JOBS:-2}
echo "== ASan + UBSan: the fuzzers"
(cd out/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest -L fuzz -j2 --output-on-failure)
echo "== ASan + UBSan suite"
(cd out/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest -LE fuzz -j "$jobs" --output-on-failure)
# No suppressions: nothing third-party has needed one. The races livemig has
# by contract (a live workload writing the pages the sender reads) are
# annotated on that memory in the code (src/tsan.h), not suppressed here.
echo "== ThreadSanitizer suite"
(cd out/tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	ctest -j "$jobs" --output-on-failure)
echo "== release suite"
(cd out/release && ctest -j "$jobs" --output-on-failure)
