#!/usr/bin/env bash
# A/B of livemig builds and codecs on the same links, interleaved: run 1 of
# every spec on every link, then run 2, and so on, so a noisy moment of the
# shared machine falls on all of them alike. For a change to codec auto:
# the build before it against the build after it, with fixed codecs beside.
#
#   bench/abbench.sh [options] IMAGE NAME=BUILD:CODEC...
#     NAME=BUILD:CODEC  a column: the livemig in BUILD (a build directory)
#                    migrating with --codec CODEC, e.g. old=/tmp/old:auto
#     --links L      tc rates, "none" (unshaped veth) or "lo", default "1gbit"
#     --runs N       rounds of everything, default 3
#     --channels N   default 2
#     --out DIR      where the results go (default /tmp/abbench-DATE-TIME)
#     --pin TX/RX    run the sender on CPUs TX and the receiver on CPUs RX
#                    (taskset lists, e.g. 0/1: as two hosts with a core
#                    each, where by default both share all of this one's)
#
# Writes DIR/runs.jsonl (one line per run: link, run, spec, build, codec and
# bench_livemig_run's result) and prints per link the median total_ms of
# each spec and its ratio to the first spec's. A run's stderr is kept as
# DIR/LINK-NAME-RUN.err when it is not empty. Needs root and the peer
# scripts (LM_PEER_DIR, default ../shared/peer); uses lmA and lmB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/lib.sh"
peer=${LM_PEER_DIR:-$top/../shared/peer}
dest=${LM_DEST:-/dev/shm/abbench-dest.img}
links=1gbit runs=3 ch=2 res= img= pin=
specs=()

while [ $# -gt 0 ]; do
	case "$1" in
	--links) links=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--channels) ch=$2; shift 2 ;;
	--out) res=$2; shift 2 ;;
	--pin) pin=$2; shift 2 ;;
	-h | --help) bench_usage ;;
	-*) echo "abbench: unknown option $1" >&2; bench_usage ;;
	*) if [ -z "$img" ]; then img=$1; else specs+=("$1"); fi; shift ;;
	esac
done
case "$runs$ch" in *[!0-9]*) echo "abbench: --runs and --channels take numbers" >&2; exit 2 ;; esac
[[ -z $pin || $pin =~ ^[0-9,-]+/[0-9,-]+$ ]] || { echo "abbench: --pin takes TX/RX CPU lists, e.g. 0/1" >&2; exit 2; }
[ -n "$img" ] && [ -f "$img" ] || { echo "abbench: no image '$img'" >&2; bench_usage; }
[ ${#specs[@]} -ge 1 ] || { echo "abbench: no NAME=BUILD:CODEC" >&2; bench_usage; }
for s in "${specs[@]}"; do
	[[ $s =~ ^[A-Za-z0-9_.-]+=[^:]+:[a-z0-9:-]+$ ]] ||
		{ echo "abbench: '$s' is not NAME=BUILD:CODEC" >&2; exit 2; }
	b=${s#*=}
	[ -x "${b%%:*}/livemig" ] || { echo "abbench: no ${b%%:*}/livemig" >&2; exit 2; }
done
res=${res:-/tmp/abbench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$res"
: >"$res/runs.jsonl"
out=$(mktemp -d /tmp/abbench.XXXXXX)


cleanup() {
	bench_link_down
	rm -rf "$out" "$dest"
}
trap cleanup EXIT
cat "$img" >/dev/null # every run reads the image from memory

for run in $(seq "$runs"); do
	for link in $links; do
		bench_link_up "$link"
		if [ -n "$pin" ]; then
			NA+=(taskset -c "${pin%/*}")
			NB+=(taskset -c "${pin#*/}")
		fi
		for s in "${specs[@]}"; do
			name=${s%%=*} b=${s#*=}
			bin=${b%%:*} codec=${b#*:}
			r=$(bench_livemig_run "$img" "$codec" "$ch" "$dest") || true
			[ -n "$r" ] || r='{"ok": false, "error": "no result"}'
			[ -s "$out/send.err" ] && cp "$out/send.err" "$res/$link-$name-$run.err"
			line="{\"link\": \"$link\", \"run\": $run, \"spec\": \"$name\", \"build\": \"$bin\", \"codec\": \"$codec\", \"result\": $r}"
			echo "$line" >>"$res/runs.jsonl"
			echo "$line"
		done
		bench_link_down
	done
done

python3 - "$res/runs.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
links, specs = [], []
for r in rows:
    links += [r["link"]] if r["link"] not in links else []
    specs += [r["spec"]] if r["spec"] not in specs else []
print("\n| link | " + " | ".join(specs) + " |")
print("|---" * (len(specs) + 1) + "|")
for l in links:
    med = {}
    for s in specs:
        t = [r["result"]["total_ms"] for r in rows
             if r["link"] == l and r["spec"] == s and r["result"].get("ok")]
        med[s] = statistics.median(t) if t else None
    base = med[specs[0]]
    cells = []
    for s in specs:
        if med[s] is None:
            cells.append("failed")
        elif s == specs[0] or not base:
            cells.append("%.0f ms" % med[s])
        else:
            cells.append("%.0f ms (%.2f)" % (med[s], med[s] / base))
    print("| %s | %s |" % (l, " | ".join(cells)))
PY
echo "abbench: runs $res/runs.jsonl"
