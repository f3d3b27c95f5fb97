#!/usr/bin/env bash
# Configures and builds one flavour into out/<flavour>:
#   release  gcc, -O2 -g, -Werror; writes compile_commands.json (scripts/lint.sh)
#   asan     clang, ASan + UBSan, libFuzzer targets, -Werror
#   tsan     clang, ThreadSanitizer, -O1 -g, -Werror, no fuzzers
# So the tree builds -Wall -Wextra -Werror clean with both compilers.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
case "$flavour" in
release) cmake -S . -B out/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLM_WERROR=ON \
	-DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null ;;
asan) cmake -S . -B out/asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DLM_SANITIZE=ON \
	-DLM_FUZZ=ON -DLM_WERROR=ON -DLM_FUZZ_SECONDS="${LM_FUZZ_SECONDS:-15}" >/dev/null ;;
tsan) cmake -S . -B out/tsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DLM_TSAN=ON \
	-DLM_WERROR=ON >/dev/null ;;
*) echo "build.sh: unknown flavour $flavour" >&2; exit 2 ;;
esac
cmake --build "out/$flavour" -j "$(nproc)" >/dev/null
