#!/usr/bin/env bash
# TLS benchmark (issue "Trust", item 6), everything side by side in one run:
# livemig with TLS 1.3 (X.509, mutual) vs livemig --plaintext vs QEMU 7.2
# multifd with TLS (tls-creds-x509) vs QEMU plaintext, on the same image,
# the same link and the same channel count; iperf3 -P CHANNELS measures the
# link first. Every run and the medians are printed as JSON lines, then a
# markdown table with the ratios. Needs root (network namespaces), iperf3 and
# qemu-system-x86 (../shared/peer/README.md).
#
#   bench/tlsbench.sh IMAGE RUNS "RATES" "CODECS" [CHANNELS]
#     RATES: tc rates (1gbit, 10gbit) and/or "none" (unshaped veth)
#     CODECS: none and/or zstd (QEMU 7.2 has both)
#   bench/tlsbench.sh --setup RUNS [CHANNELS]
#     loopback, a tiny 8 MiB image, CHANNELS (default 8) TLS channels:
#     setup_time_ms of both sides, median of RUNS (plaintext alongside)
#
# Within a cell the four tools alternate and the order rotates from run to
# run (run i starts with tool i mod 4). The certificates are made for the
# run in a temporary directory by tests/tls_certs.sh (never kept): the
# receiver's certificate names IP:10.77.0.2 (IP:127.0.0.1 for --setup), the
# address the sender checks, for livemig and QEMU alike.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
peer=${LM_PEER_DIR:-$top/../shared/peer}
bin=${LM_BIN:-$top/out/release}
dest=${LM_DEST:-/dev/shm/livemig-tlsbench-dest.img}
out=$(mktemp -d /tmp/tlsbench.XXXXXX)
netns=0
cleanup() {
	[ "$netns" = 0 ] || "$peer/netns.sh" down
	rm -rf "$out" "$dest"
}
trap cleanup EXIT

creds() { # side (server|client) dir
	echo --tls-cert "$2/$1-cert.pem" --tls-key "$2/$1-key.pem" --tls-ca "$2/ca-cert.pem"
}

# One livemig run: prints the sender's and receiver's JSON as one line.
#   lm_run HOST CHANNELS CODEC IMAGE tls|plain PKI NS_RECV NS_SEND
lm_run() {
	local host=$1 ch=$2 codec=$3 img=$4 mode=$5 pki=$6 nb=$7 na=$8 rt st
	if [ "$mode" = tls ]; then
		rt=$(creds server "$pki") st=$(creds client "$pki")
	else
		rt=--plaintext st=--plaintext
	fi
	rm -f "$dest"
	# shellcheck disable=SC2086
	$nb "$bin/livemig" recv --listen "$host:4470" --image "$dest" --json --accept-timeout 30 \
		$rt >"$out/recv.json" 2>"$out/recv.err" &
	local rpid=$!
	sleep 0.3
	# shellcheck disable=SC2086
	if ! $na "$bin/livemig" send --image "$img" --to "$host:4470" --channels "$ch" \
		--codec "$codec" --json $st >"$out/send.json" 2>"$out/send.err"; then
		cat "$out/send.err" >&2
	fi
	wait "$rpid" || cat "$out/recv.err" >&2
	python3 - "$out/send.json" "$out/recv.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
print(json.dumps({"status": s["status"], "total_ms": s["total_time_ms"],
                  "setup_ms": s["setup_time_ms"], "recv_total_ms": r["total_time_ms"],
                  "recv_setup_ms": r["setup_time_ms"], "tls": s.get("tls", ""),
                  "tls_resumed": s.get("tls_resumed", 0), "transferred": s["transferred"],
                  "normal_bytes": s["normal_bytes"], "sender_cpu_s": s["cpu_seconds"],
                  "receiver_cpu_s": r["cpu_seconds"]}))
PY
}

if [ "${1:-}" = --setup ]; then
	runs=$2 ch=${3:-8}
	"$top/tests/tls_certs.sh" "$out/pki" 127.0.0.1
	"$bin/lm-mkimage" --size 8M --out "$out/tiny.img" --quiet
	for i in $(seq "$runs"); do
		for mode in tls plain; do
			l=$(lm_run 127.0.0.1 "$ch" none "$out/tiny.img" "$mode" "$out/pki" "" "")
			echo "{\"run\": $i, \"mode\": \"$mode\", \"channels\": $ch, \"livemig\": $l}"
			echo "$l" >>"$out/setup-$mode.jsonl"
		done
	done
	python3 - "$out" "$ch" <<'PY'
import json, statistics as st, sys
for mode in ("tls", "plain"):
    l = [json.loads(x) for x in open(f"{sys.argv[1]}/setup-{mode}.jsonl")]
    print(json.dumps({"summary": "setup", "mode": mode, "channels": int(sys.argv[2]),
                      "runs": len(l), "sender_setup_ms_median": st.median(x["setup_ms"] for x in l),
                      "receiver_setup_ms_median": st.median(x["recv_setup_ms"] for x in l),
                      "sender_setup_ms": [x["setup_ms"] for x in l],
                      "receiver_setup_ms": [x["recv_setup_ms"] for x in l]}))
PY
	exit 0
fi

img=$1 runs=$2 rates=$3 codecs=$4 ch=${5:-2}
"$top/tests/tls_certs.sh" "$out/pki" 10.77.0.2
cat "$img" >/dev/null # every side reads the image from the page cache
NA="ip netns exec lmA" NB="ip netns exec lmB" host=10.77.0.2
tools=(qemu-plain qemu-tls livemig-plain livemig-tls)
for rate in $rates; do
	"$peer/netns.sh" down
	netns=1
	"$peer/netns.sh" up "$rate"
	$NB iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
	sleep 0.5
	$NA iperf3 -c "$host" -p 5201 -P "$ch" -t 5 -J >"$out/iperf.json"
	wait
	link=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6,1))' "$out/iperf.json")
	echo "{\"link\": \"$rate\", \"iperf3_mbps\": $link, \"channels\": $ch}"
	echo "$rate $link" >>"$out/links"
	for codec in $codecs; do
		for i in $(seq "$runs"); do
			for k in 0 1 2 3; do
				t=${tools[$(((i - 1 + k) % 4))]}
				case $t in
				qemu-plain) r=$(python3 "$peer/qemu_mig.py" "$img" "$codec" "$ch" ns) ;;
				qemu-tls) r=$(QEMU_TLS_DIR="$out/pki" python3 "$peer/qemu_mig.py" "$img" "$codec" "$ch" ns) ;;
				livemig-plain) r=$(lm_run $host "$ch" "$codec" "$img" plain "$out/pki" "$NB" "$NA") ;;
				livemig-tls) r=$(lm_run $host "$ch" "$codec" "$img" tls "$out/pki" "$NB" "$NA") ;;
				esac
				echo "{\"link\": \"$rate\", \"codec\": \"$codec\", \"run\": $i, \"tool\": \"$t\", \"result\": $r}" |
					tee -a "$out/runs.jsonl"
			done
		done
	done
done
python3 - "$out/runs.jsonl" "$out/links" <<'PY'
import json, statistics as st, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
links = dict(l.split() for l in open(sys.argv[2]))
cells = {}
for r in runs:
    cells.setdefault((r["link"], r["codec"]), {}).setdefault(r["tool"], []).append(r["result"])
def med(xs, k="total_ms"):
    v = [x[k] for x in xs if x.get("status") == "completed" and x.get(k) is not None]
    return st.median(v) if v else float("nan")
print("| link | iperf3 -P | codec | QEMU plain | QEMU TLS | livemig plain | livemig TLS "
      "| lm TLS / lm plain | lm TLS / QEMU TLS | lm TLS / QEMU TLS best codec |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (link, codec), c in cells.items():
    qbest = min(med(cells[(link, k)]["qemu-tls"]) for (l2, k) in cells if l2 == link)
    q, qt = med(c["qemu-plain"]), med(c["qemu-tls"])
    lp, lt = med(c["livemig-plain"]), med(c["livemig-tls"])
    print(f"| {link} | {float(links[link]):.0f} Mbit/s | {codec} | {q:.0f} | {qt:.0f} | {lp:.0f} | "
          f"{lt:.0f} | {lt / lp:.2f} | {lt / qt:.2f} | {lt / qbest:.2f} |")
    print(json.dumps({"summary": True, "link": link, "codec": codec, "iperf3_mbps": float(links[link]),
                      "runs": {t: [x["total_ms"] for x in v] for t, v in c.items()},
                      "sender_cpu_s": {t: st.median(x["sender_cpu_s"] for x in v)
                                       for t, v in c.items() if t.startswith("livemig")},
                      "receiver_cpu_s": {t: st.median(x["receiver_cpu_s"] for x in v)
                                         for t, v in c.items() if t.startswith("livemig")}}),
          file=sys.stderr)
PY
