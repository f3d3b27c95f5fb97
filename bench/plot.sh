#!/usr/bin/env bash
# Figures for docs/benchmarks.md, drawn by gnuplot as SVG from a benchmark's
# JSON. Needs bash, python3 (standard library) and gnuplot (Debian 12:
# gnuplot-nox; scripts/deps.sh bench installs it).
#
#   bench/plot.sh links SUMMARY.json [OUT.svg [TITLE]]
#     total time against link rate (log scales), one solid line per livemig
#     codec and a dashed one per QEMU multifd method, from the summary.json
#     of bench/linkbench.sh; OUT default docs/img/linkbench.svg
#   bench/plot.sh live DEMO.json [OUT.svg [TITLE]]
#     remaining MiB (left axis) and throttle % (right axis) per round of one
#     live migration, from `livemig demo --json`'s round_log (such as a file
#     LM_KEEP=DIR bench/livebench.sh keeps); OUT default docs/img/live-rounds.svg
#
# A method whose every run failed has no line (the table says why); a link
# without a rate (unshaped, when iperf3 did not run) has no point.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")

usage() {
	sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
[ $# -ge 2 ] && [ $# -le 4 ] || usage
kind=$1 src=$2
case "$kind" in
links) def=linkbench.svg ;;
live) def=live-rounds.svg ;;
*) usage ;;
esac
dst=${3:-$top/docs/img/$def}
command -v gnuplot >/dev/null || { echo "plot: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
[ -f "$src" ] || { echo "plot: no file $src" >&2; exit 1; }

tmp=$(mktemp -d /tmp/plot.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$dst")"
python3 "$here/plot.py" "$kind" "$src" "$tmp" "$tmp/out.svg" ${4+"$4"}
gnuplot "$tmp/plot.gp"
[ -s "$tmp/out.svg" ] || { echo "plot: gnuplot wrote nothing" >&2; exit 1; }
mv "$tmp/out.svg" "$dst"
echo "plot: $dst ($(stat -c %s "$dst") bytes)"
