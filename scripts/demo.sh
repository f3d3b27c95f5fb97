#!/usr/bin/env bash
# Demo: builds livemig and migrates, live, 1 GiB of memory that a workload
# keeps writing at 128 MiB/s, over loopback with 2 channels, to a
# destination process; prints each round, both sides' statistics, and
# verifies the destination's memory against the source at the pause.
# Arguments go to `livemig demo` (see `out/release/livemig demo --help`),
# e.g. scripts/demo.sh --size 4G --dirty-rate 512M --codec zstd
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
scripts/build.sh release
exec out/release/livemig demo "$@"
