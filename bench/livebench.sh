#!/usr/bin/env bash
# Live pre-copy benchmark (issue 4): `livemig demo --netns` migrates a 1 GiB
# workload that dirties DIRTY bytes/s over a 256 MiB working set, on a link
# shaped to RATE between the lmA and lmB namespaces, RUNS times per dirty
# rate and codec; prints every run and the medians as JSON lines.
#
# The peer in the same run: iperf3 (the link's limit) and QEMU 7.2 multifd
# migrating a paused guest whose RAM is a 1 GiB lm-mkimage image (a one-pass
# copy of the same size: QEMU here has no guest that writes, see
# docs/benchmarks.md).
#
#   bench/livebench.sh RATE RUNS "64M 256M 1024M" "none zstd lz4" [extra demo options]
#
# LM_IMAGE=FILE: the QEMU peer's image (default a generated 1 GiB one);
# LM_KEEP=DIR keeps each demo's whole JSON as DIR/demo-RATE-CODEC-DIRTY-RUN.json,
# the input of `bench/plot.sh live` (remaining bytes and throttle per round).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
peer=${LM_PEER_DIR:-$top/../shared/peer}
bin=${LM_BIN:-$top/out/release}
rate=$1 runs=$2 dirties=$3 codecs=$4
shift 4
out=$(mktemp -d /tmp/livebench.XXXXXX)
img=${LM_IMAGE:-/dev/shm/livebench-1g.img}
keep=${LM_KEEP:-} # a directory: every demo's whole --json output is kept there

. "$here/lib.sh"

bench_link_up "$rate"
cleanup() {
	bench_link_down
	rm -rf "$out"
}
trap cleanup EXIT

[ -f "$img" ] || "$bin/lm-mkimage" --size 1G --out "$img" >/dev/null
[ -z "$keep" ] || mkdir -p "$keep"

link=$(bench_iperf 2 4)
echo "{\"link\": \"$rate\", \"iperf3_mbps\": $link}"

for codec in $codecs; do
	qc=$codec
	[ "$qc" = none ] || [ "$qc" = zstd ] || [ "$qc" = zlib ] || qc=none
	for i in $(seq "$runs"); do
		q=$(bench_qemu_run "$img" "$qc" 2)
		echo "{\"codec\": \"$codec\", \"run\": $i, \"qemu_paused\": $q}"
		echo "$q" >>"$out/qemu-$codec.jsonl"
		for d in $dirties; do
			j=$("$bin/livemig" demo --netns --size 1G --working-set 256M --dirty-rate "$d" \
				--channels 2 --codec "$codec" --json "$@" 2>/dev/null) || true
			[ -z "$keep" ] || printf '%s\n' "$j" >"$keep/demo-$rate-$codec-$d-$i.json"
			r=$(python3 -c '
import json, sys
try:
    d = json.loads(sys.argv[1]); s = d["source"]
    print(json.dumps({"ok": bool(d.get("verified")), "total_ms": s["total_time_ms"],
                      "downtime_ms": s["downtime_ms"], "rounds": s["rounds"],
                      "transferred": s["transferred"], "precopy_bytes": s["precopy_bytes"],
                      "downtime_bytes": s["downtime_bytes"], "throttle_pct": s["throttle_pct"],
                      "status": s["status"],
                      # rounds after the first: wire bytes per byte of the pages they sent
                      "later_bytes_per_page_byte": round(d["later_rounds"]["bytes"] / max(1, d["later_rounds"]["pages"] * 4096), 4) if "later_rounds" in d else None}))
except Exception as e:
    print(json.dumps({"ok": False, "error": str(e)}))' "$j")
			echo "{\"codec\": \"$codec\", \"dirty\": \"$d\", \"run\": $i, \"livemig\": $r}"
			echo "$r" >>"$out/lm-$codec-$d.jsonl"
		done
	done
done

python3 - "$out" "$rate" "$link" "$dirties" "$codecs" <<'PY'
import json, os, statistics as st, sys
out, rate, link = sys.argv[1], sys.argv[2], float(sys.argv[3])
for codec in sys.argv[5].split():
    q = [json.loads(l) for l in open(os.path.join(out, f"qemu-{codec}.jsonl"))]
    qt = st.median(x["total_ms"] for x in q)
    for d in sys.argv[4].split():
        l = [json.loads(x) for x in open(os.path.join(out, f"lm-{codec}-{d}.jsonl"))]
        ok = [x for x in l if x.get("ok")]
        med = lambda k: st.median(x[k] for x in ok) if ok else None
        print(json.dumps({"summary": True, "link": rate, "iperf3_mbps": link, "codec": codec,
                          "dirty": d, "runs": len(l), "converged": len(ok),
                          "total_ms": med("total_ms"), "downtime_ms": med("downtime_ms"),
                          "downtime_ms_max": max((x["downtime_ms"] for x in ok), default=None),
                          "rounds": med("rounds"), "transferred_mib": round(med("transferred") / 2**20, 1) if ok else None,
                          "downtime_kib": round(med("downtime_bytes") / 1024, 1) if ok else None,
                          "throttle_pct_max": max((x["throttle_pct"] for x in ok), default=None),
                          "later_bytes_per_page_byte": med("later_bytes_per_page_byte") if ok and all(x.get("later_bytes_per_page_byte") is not None for x in ok) else None,
                          "qemu_paused_total_ms": qt}))
PY
