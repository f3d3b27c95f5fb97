#!/usr/bin/env bash
# Side-by-side end-to-end benchmark on one image and one link, in one run:
# iperf3 -P CHANNELS (the link's own limit), QEMU 7.2 multifd (the peer) and
# livemig, alternated RUNS times; prints every run and the medians as JSON
# lines and a summary line. Needs root (network namespaces), iperf3 and
# qemu-system-x86 (../shared/peer/README.md). It stops at the first run that
# fails; bench/linkbench.sh runs several links and codecs, records failed
# runs and goes on. The link and run functions are bench/lib.sh's.
#
#   bench/netbench.sh IMAGE RATE CHANNELS RUNS [CODEC]
#     RATE: a tc rate (1gbit, 10gbit), "none" (unshaped veth) or "lo" (loopback)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
peer=${LM_PEER_DIR:-$top/../shared/peer}
bin=${LM_BIN:-$top/out/release}
img=$1 rate=$2 ch=$3 runs=$4 codec=${5:-none}
dest=${LM_DEST:-/dev/shm/livemig-bench-dest.img}
out=$(mktemp -d /tmp/netbench.XXXXXX)

. "$here/lib.sh"

bench_link_up "$rate"
cleanup() {
	bench_link_down
	rm -rf "$out" "$dest"
}
trap cleanup EXIT

# Warm the page cache: every side reads the image from memory.
cat "$img" >/dev/null

qemu_codec=$codec
[ "$codec" = none ] || [ "$codec" = zstd ] || [ "$codec" = zlib ] || qemu_codec=none
link=$(bench_iperf "$ch" 5)
echo "{\"link\": \"$rate\", \"iperf3_mbps\": $link, \"channels\": $ch}"
for i in $(seq "$runs"); do
	q=$(bench_qemu_run "$img" "$qemu_codec" "$ch")
	echo "{\"run\": $i, \"qemu\": $q}"
	echo "$q" >>"$out/qemu.jsonl"
	l=$(bench_livemig_run "$img" "$codec" "$ch" "$dest")
	echo "{\"run\": $i, \"livemig\": $l}"
	echo "$l" >>"$out/livemig.jsonl"
done
python3 - "$out/qemu.jsonl" "$out/livemig.jsonl" "$link" "$rate" "$ch" "$codec" <<'PY'
import json, statistics as st, sys
q = [json.loads(l) for l in open(sys.argv[1])]
l = [json.loads(l) for l in open(sys.argv[2])]
link = float(sys.argv[3])
qt = st.median(x["total_ms"] for x in q)
lt = st.median(x["total_ms"] for x in l)
# Goodput: the non-zero page bytes livemig moved, over its transfer time.
good = st.median(x["normal_bytes"] * 8 / (x["total_ms"] / 1e3) / 1e6 for x in l)
print(json.dumps({"summary": True, "link": sys.argv[4], "channels": int(sys.argv[5]),
                  "codec": sys.argv[6], "runs": len(l), "iperf3_mbps": link,
                  "qemu_total_ms_median": qt, "livemig_total_ms_median": lt,
                  "livemig_over_qemu": round(lt / qt, 3),
                  "livemig_goodput_mbps_median": round(good, 1),
                  "goodput_over_iperf3": round(good / link, 3),
                  "sender_cpu_s_median": st.median(x["sender_cpu_s"] for x in l),
                  "receiver_cpu_s_median": st.median(x["receiver_cpu_s"] for x in l)}))
PY
