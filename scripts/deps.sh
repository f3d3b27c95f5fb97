#!/usr/bin/env bash
# Installs the Debian 12 packages livemig needs for a purpose (demo | test | bench)
# when run as root; otherwise prints the exact apt-get line and fails.
set -euo pipefail

purpose=${1:-demo}
pkgs=(cmake make gcc libc6-dev libxxhash-dev libzstd-dev liblz4-dev libisal-dev zlib1g-dev libssl-dev)
if [ "$purpose" = test ]; then
	# clang + compiler-rt: ASan/UBSan build and the libFuzzer targets;
	# python3: the CLI and demo tests parse the JSON statistics;
	# procps: test_demo finds the demo's processes with pgrep and ps (not
	# Essential: a minimal Debian 12 lacks it, and the check would pass empty).
	# openssl: the TLS tests make their certificates and keys with it.
	# cppcheck, clang-tidy, clang-format: scripts/lint.sh.
	pkgs+=(clang libclang-rt-14-dev python3 procps openssl cppcheck clang-tidy clang-format)
elif [ "$purpose" = bench ]; then
	# The end-to-end benchmarks (bench/*.sh): iperf3 measures the link,
	# QEMU 7.2 is the peer (../shared/peer/), time reports each side's
	# RSS, procps lets a benchmark end the receiver it started, gnuplot
	# draws the figures (bench/plot.sh). The test suite needs none of them.
	pkgs+=(python3 procps time iperf3 qemu-system-x86 gnuplot-nox)
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "deps: missing Debian packages; run as root:" >&2
	echo "  apt-get install -y ${missing[*]}" >&2
	exit 1
fi
