#!/usr/bin/env bash
# Every codec on every link, side by side in one run (issue 10, item 6):
# livemig's codecs and QEMU 7.2 multifd's methods migrate the same image
# over each link in a list, interleaved: run 1 of every link and method,
# then run 2, and so on, so a noisy moment of the shared machine falls on
# all of them alike rather than on one. Each run of each link also measures
# the link with iperf3 -P CHANNELS.
#
#   bench/linkbench.sh [options] [IMAGE]
#     IMAGE          the memory image (default /dev/shm/linkbench-1g.img, made
#                    with `lm-mkimage --size 1G` when missing: the realistic mix)
#     --links L      tc rates, "none" (unshaped veth) or "lo" (loopback),
#                    default "1gbit 3gbit 10gbit none"
#     --codecs C     livemig codecs, default "auto none lz4 zstd deflate"
#     --qemu M       QEMU multifd methods, default "none zstd zlib" ("" for none)
#     --runs N       rounds of everything, default 3
#     --channels N   channels of both (and iperf3 -P), default 2
#     --iperf-time S seconds of each iperf3 run, default 3 (0: no iperf3)
#     --out DIR      where the results go (default /tmp/linkbench-DATE-TIME)
#     --pin TX/RX    run every source (livemig send, QEMU's source, iperf3's
#                    client) on CPUs TX and every destination on CPUs RX, as
#                    two hosts would be, instead of both sharing every CPU
#                    (namespaced links only; each run's line says "pin")
#
# Writes DIR/runs.jsonl (one line per run: link, run, impl, method, and the
# result with "ok"; a failed run, e.g. a codec this build refuses, is a line
# with "ok": false and its error, and the benchmark goes on), DIR/summary.json
# (per link and method: median total_ms, runs, failures, and the codec mix
# of the sender's statistics where present: bench/linksum.py) and
# DIR/table.md, the markdown table it also prints (medians, auto / best
# fixed livemig codec, auto / best QEMU method). Then
#   bench/plot.sh links DIR/summary.json      # docs/img/linkbench.svg
# draws total time against link rate.
#
# Needs root (network namespaces), iperf3, qemu-system-x86 and the peer
# scripts in ../shared/peer/ (README.md there); LM_BIN is the build (default
# out/release), LM_PEER_DIR the peer scripts, LM_DEST the receiver's image
# (default /dev/shm/linkbench-dest.img). Uses lmA and lmB: run no other
# benchmark that uses them at the same time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/lib.sh"
peer=${LM_PEER_DIR:-$top/../shared/peer}
bin=${LM_BIN:-$top/out/release}
dest=${LM_DEST:-/dev/shm/linkbench-dest.img}

links="1gbit 3gbit 10gbit none"
codecs="auto none lz4 zstd deflate"
qemu="none zstd zlib"
runs=3 ch=2 itime=3 res= img= pin=

while [ $# -gt 0 ]; do
	case "$1" in
	--links) links=$2; shift 2 ;;
	--codecs) codecs=$2; shift 2 ;;
	--qemu) qemu=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--channels) ch=$2; shift 2 ;;
	--iperf-time) itime=$2; shift 2 ;;
	--out) res=$2; shift 2 ;;
	--pin) pin=$2; shift 2 ;;
	-h | --help) bench_usage ;;
	-*) echo "linkbench: unknown option $1" >&2; bench_usage ;;
	*) [ -z "$img" ] || bench_usage; img=$1; shift ;;
	esac
done
case "$runs$ch$itime" in *[!0-9]*) echo "linkbench: --runs, --channels and --iperf-time take numbers" >&2; exit 2 ;; esac
[ "$runs" -ge 1 ] && [ "$ch" -ge 1 ] || { echo "linkbench: --runs and --channels must be at least 1" >&2; exit 2; }
[ -n "$links" ] && [ -n "$codecs$qemu" ] || { echo "linkbench: nothing to run" >&2; exit 2; }
for l in $links; do # a bad rate would stop the benchmark midway, at tc
	[ "$l" = lo ] || [ "$l" = none ] || [[ $l =~ ^[0-9]+(\.[0-9]+)?([kmgt]i?)?(bit|bps)$ ]] ||
		{ echo "linkbench: link '$l' is not a tc rate (1gbit, 500mbit), none or lo" >&2; exit 2; }
done
[ -x "$bin/livemig" ] || { echo "linkbench: no $bin/livemig (set LM_BIN to the build)" >&2; exit 2; }
[[ -z $pin || $pin =~ ^[0-9,-]+/[0-9,-]+$ ]] || { echo "linkbench: --pin takes TX/RX CPU lists, e.g. 0/1" >&2; exit 2; }
[[ -z $pin || " $links " != *" lo "* ]] || { echo "linkbench: --pin needs the namespaced links (not lo)" >&2; exit 2; }

if [ -z "$img" ]; then
	img=/dev/shm/linkbench-1g.img
	[ -f "$img" ] || "$bin/lm-mkimage" --size 1G --out "$img" >/dev/null
fi
[ -f "$img" ] || { echo "linkbench: no image $img" >&2; exit 2; }
res=${res:-/tmp/linkbench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$res"
: >"$res/runs.jsonl"
out=$(mktemp -d /tmp/linkbench.XXXXXX)


cleanup() {
	bench_link_down
	rm -rf "$out" "$dest"
}
trap cleanup EXIT

# Pinned, qemu_mig.py's `ip netns exec lmA|lmB QEMU` goes through an `ip`
# earlier on its PATH that puts taskset in front of QEMU, so QEMU's two
# sides are pinned from their start as livemig's are.
if [ -n "$pin" ]; then
	ipbin=$(type -P ip) || { echo "linkbench: --pin needs ip on the PATH" >&2; exit 2; }
	for cpus in "${pin%/*}" "${pin#*/}"; do
		taskset -c "$cpus" true 2>/dev/null || { echo "linkbench: --pin: no CPUs $cpus here" >&2; exit 2; }
	done
	mkdir -p "$out/pinbin"
	cat >"$out/pinbin/ip" <<EOF
#!/bin/sh
if [ "\$1 \$2 \$3" = "netns exec lmA" ]; then shift 3; exec '$ipbin' netns exec lmA taskset -c ${pin%/*} "\$@"; fi
if [ "\$1 \$2 \$3" = "netns exec lmB" ]; then shift 3; exec '$ipbin' netns exec lmB taskset -c ${pin#*/} "\$@"; fi
exec '$ipbin' "\$@"
EOF
	chmod +x "$out/pinbin/ip"
fi

# Warm the page cache: every side reads the image from memory.
cat "$img" >/dev/null

# record RUN IMPL METHOD RESULT: one line of runs.jsonl (and of stdout).
record() {
	local line="{\"link\": \"$link\", \"run\": $1, \"impl\": \"$2\", \"method\": \"$3\", \"pin\": \"$pin\", \"result\": $4}"
	echo "$line" >>"$res/runs.jsonl"
	echo "$line"
}

# The order inside a round alternates livemig and QEMU (auto, QEMU none,
# none, QEMU zstd, ...), so neither always runs right after the other.
read -r -a lm_list <<<"$codecs"
read -r -a q_list <<<"$qemu"
order=()
for ((i = 0; i < ${#lm_list[@]} || i < ${#q_list[@]}; i++)); do
	[ "$i" -ge ${#lm_list[@]} ] || order+=("livemig:${lm_list[i]}")
	[ "$i" -ge ${#q_list[@]} ] || order+=("qemu:${q_list[i]}")
done

for run in $(seq "$runs"); do
	for link in $links; do
		bench_link_up "$link"
		if [ -n "$pin" ]; then
			NA+=(taskset -c "${pin%/*}")
			NB+=(taskset -c "${pin#*/}")
		fi
		if [ "$itime" -gt 0 ]; then
			mbps=$(bench_iperf "$ch" "$itime") || mbps=null
			record "$run" iperf3 "-P $ch" "{\"ok\": $([ "$mbps" = null ] && echo false || echo true), \"mbps\": $mbps}"
		fi
		for m in "${order[@]}"; do
			impl=${m%%:*} method=${m#*:}
			if [ "$impl" = livemig ]; then
				r=$(bench_livemig_run "$img" "$method" "$ch" "$dest") || true
			else
				r=$(PATH=${pin:+$out/pinbin:}$PATH bench_qemu_run "$img" "$method" "$ch") || true
			fi
			[ -n "$r" ] || r='{"ok": false, "error": "no result"}'
			record "$run" "$impl" "$method" "$r"
		done
		bench_link_down
	done
done

python3 "$here/linksum.py" --image "$img" --channels "$ch" --codecs "$codecs" --qemu "$qemu" \
	--links "$links" "$res/runs.jsonl" "$res/summary.json" "$res/table.md"
echo
cat "$res/table.md"
echo
echo "linkbench: runs $res/runs.jsonl, summary $res/summary.json, table $res/table.md"
echo "linkbench: plot with: bench/plot.sh links $res/summary.json"
