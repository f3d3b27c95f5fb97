#!/usr/bin/env bash
# Side-by-side end-to-end benchmark on one image and one link, in one run:
# iperf3 -P CHANNELS (the link's own limit), QEMU 7.2 multifd (the peer) and
# livemig, alternated RUNS times; prints every run and the medians as JSON
# lines and a summary line. Needs root (network namespaces), iperf3 and
# qemu-system-x86 (../shared/peer/README.md).
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

if [ "$rate" = lo ]; then
	NA=() NB=() host=127.0.0.1 qns= plain=()
else
	"$peer/netns.sh" down
	"$peer/netns.sh" up "$rate"
	NA=(ip netns exec lmA) NB=(ip netns exec lmB) host=10.77.0.2 qns=ns
	plain=(--plaintext) # off this host livemig refuses plaintext without it
fi
cleanup() {
	[ "$rate" = lo ] || "$peer/netns.sh" down
	rm -rf "$out" "$dest"
}
trap cleanup EXIT

# Warm the page cache: every side reads the image from memory.
cat "$img" >/dev/null

iperf() {
	"${NB[@]}" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
	sleep 0.5
	"${NA[@]}" iperf3 -c "$host" -p 5201 -P "$ch" -t 5 -J >"$out/iperf.json"
	wait
	python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6,1))' "$out/iperf.json"
}

livemig_run() {
	rm -f "$dest"
	"${NB[@]}" /usr/bin/time -v -o "$out/recv.time" "$bin/livemig" recv --listen "$host:4470" \
		--image "$dest" --json --accept-timeout 30 "${plain[@]}" >"$out/recv.json" 2>"$out/recv.err" &
	local rpid=$!
	sleep 0.3
	"${NA[@]}" /usr/bin/time -v "$bin/livemig" send --image "$img" --to "$host:4470" \
		--channels "$ch" --codec "$codec" --json "${plain[@]}" >"$out/send.json" 2>"$out/send.time"
	wait "$rpid"
	python3 - "$out/send.json" "$out/recv.json" "$out/send.time" "$out/recv.time" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
def rss(f):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f).read()).group(1))
# Beyond the region: the sender maps the whole image (MAP_POPULATE), the
# receiver only the pages it wrote (zero pages stay holes).
print(json.dumps({"total_ms": s["total_time_ms"], "recv_total_ms": r["total_time_ms"],
                  "mbps": s["throughput_mbps"], "normal_bytes": s["normal_bytes"],
                  "transferred": s["transferred"], "sender_cpu_s": s["cpu_seconds"],
                  "receiver_cpu_s": r["cpu_seconds"],
                  "sender_extra_rss_mib": round((rss(sys.argv[3]) * 1024 - s["total_ram"]) / 2**20, 1),
                  "ref_pages": s.get("ref_pages", 0),
                  # ref pages are written on the receiver too: region memory, not extra
                  "receiver_extra_rss_mib": round((rss(sys.argv[4]) * 1024 - r["normal_bytes"]
                                                   - r.get("ref_pages", 0) * r["page_size"]) / 2**20, 1)}))
PY
}

qemu_codec=$codec
[ "$codec" = none ] || [ "$codec" = zstd ] || [ "$codec" = zlib ] || qemu_codec=none
link=$(iperf)
echo "{\"link\": \"$rate\", \"iperf3_mbps\": $link, \"channels\": $ch}"
for i in $(seq "$runs"); do
	q=$(python3 "$peer/qemu_mig.py" "$img" "$qemu_codec" "$ch" $qns)
	echo "{\"run\": $i, \"qemu\": $q}"
	echo "$q" >>"$out/qemu.jsonl"
	l=$(livemig_run)
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
