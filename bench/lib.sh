# Sourced by netbench.sh, linkbench.sh and livebench.sh, never run: the one
# definition of how a benchmark link is set up, how iperf3 measures it, and
# how one livemig and one QEMU 7.2 multifd migration run and are reported.
#
# The caller sets, before calling these functions:
#   peer   ../shared/peer (netns.sh, qemu_mig.py)
#   bin    the build holding livemig and lm-mkimage
#   out    a scratch directory of its own (the runs' files go there)
# bench_link_up sets NA and NB (command prefixes that run in the source's
# and the destination's host), host (the destination's address), qns
# (qemu_mig.py's namespace argument) and plain (livemig's plaintext flag).

# bench_usage: the calling script's head comment (its lines 2 up to the
# first that is not a comment) as its usage, on stderr; exits 2.
bench_usage() {
	sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

# bench_link_up RATE: RATE a tc rate (1gbit, 10gbit), "none" (an unshaped
# veth between the namespaces lmA and lmB) or "lo" (loopback, no namespaces).
bench_link_up() {
	bench_rate=$1
	if [ "$1" = lo ]; then
		NA=() NB=() host=127.0.0.1 qns= plain=()
		return 0
	fi
	"$peer/netns.sh" down
	"$peer/netns.sh" up "$1"
	NA=(ip netns exec lmA) NB=(ip netns exec lmB) host=10.77.0.2 qns=ns
	plain=(--plaintext) # off this host livemig refuses plaintext without it
}

bench_link_down() {
	[ "${bench_rate:-lo}" = lo ] || "$peer/netns.sh" down
	bench_rate=lo
}

# bench_iperf CHANNELS SECONDS: prints the link's rate in Mbit/s as
# iperf3 -P CHANNELS measures it (the link's own limit in this run).
bench_iperf() {
	"${NB[@]}" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
	local spid=$!
	sleep 0.5
	if ! "${NA[@]}" iperf3 -c "$host" -p 5201 -P "$1" -t "$2" -J >"$out/iperf.json"; then
		bench_stop "$spid"
		echo "bench: iperf3 failed on link $bench_rate" >&2
		return 1
	fi
	wait "$spid" || true
	python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6,1))' "$out/iperf.json"
}

# bench_stop PID: ends a job this script started and its descendants
# (ip netns exec -> /usr/bin/time -> livemig), then reaps it.
bench_stop() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		bench_stop "$c"
	done
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# bench_error_json TEXT...: {"ok": false, "error": the last non-empty line
# of the given files or strings}.
bench_error_json() {
	python3 - "$@" <<'PY'
import json, os, sys
msg = ""
for a in sys.argv[1:]:
    text = open(a, errors="replace").read() if os.path.isfile(a) else a
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if lines:
        msg = lines[-1]
        break
print(json.dumps({"ok": False, "error": msg or "failed without a message"}))
PY
}

# bench_livemig_run IMAGE CODEC CHANNELS DEST: one `livemig send` of IMAGE
# to a `livemig recv` into DEST over the current link. Prints one JSON
# object: the run's figures with "ok": true, or "ok": false and the error
# (a codec this build refuses, a failed migration); returns 1 on failure.
bench_livemig_run() {
	local img=$1 codec=$2 ch=$3 dest=$4 rpid i
	rm -f "$dest" "$out/send.json" "$out/recv.json"
	"${NB[@]}" /usr/bin/time -v -o "$out/recv.time" "$bin/livemig" recv --listen "$host:4470" \
		--image "$dest" --json --accept-timeout 30 "${plain[@]}" >"$out/recv.json" 2>"$out/recv.err" &
	rpid=$!
	sleep 0.3
	if ! "${NA[@]}" /usr/bin/time -v -o "$out/send.time" "$bin/livemig" send --image "$img" \
		--to "$host:4470" --channels "$ch" --codec "$codec" --json "${plain[@]}" \
		>"$out/send.json" 2>"$out/send.err"; then
		# A sender refused before it connected leaves the receiver
		# waiting for its accept timeout; one that failed later has
		# told the receiver, which exits by itself.
		for i in $(seq 20); do
			kill -0 "$rpid" 2>/dev/null || break
			sleep 0.1
		done
		bench_stop "$rpid"
		echo "bench: livemig send --codec $codec failed: $(tail -n 1 "$out/send.err")" >&2
		bench_error_json "$out/send.err" "$out/recv.err"
		return 1
	fi
	if ! wait "$rpid"; then
		echo "bench: livemig recv failed: $(tail -n 1 "$out/recv.err")" >&2
		bench_error_json "$out/recv.err"
		return 1
	fi
	python3 - "$out/send.json" "$out/recv.json" "$out/send.time" "$out/recv.time" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
def rss(f):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f).read()).group(1))
# Beyond the region: the sender maps the whole image (MAP_POPULATE), the
# receiver only the pages it wrote (zero pages stay holes).
rec = {"ok": True, "codec": s.get("codec"), "total_ms": s["total_time_ms"],
       "recv_total_ms": r["total_time_ms"],
       "mbps": s["throughput_mbps"], "normal_bytes": s["normal_bytes"],
       "transferred": s["transferred"], "sender_cpu_s": s["cpu_seconds"],
       "receiver_cpu_s": r["cpu_seconds"],
       "sender_extra_rss_mib": round((rss(sys.argv[3]) * 1024 - s["total_ram"]) / 2**20, 1),
       "ref_pages": s.get("ref_pages", 0),
       # ref pages are written on the receiver too: region memory, not extra
       "receiver_extra_rss_mib": round((rss(sys.argv[4]) * 1024 - r["normal_bytes"]
                                        - r.get("ref_pages", 0) * r["page_size"]) / 2**20, 1)}
if "codec_mix" in s: # what codec auto chose (a pinned codec: it and none)
    rec["codec_mix"] = s["codec_mix"]
print(json.dumps(rec))
PY
}

# bench_qemu_run IMAGE METHOD CHANNELS: one QEMU 7.2 multifd migration of a
# paused guest whose RAM is IMAGE, over the current link. Prints
# qemu_mig.py's JSON with "ok": true, or "ok": false and the error; returns
# 1 on failure.
bench_qemu_run() {
	local q
	if ! q=$(python3 "$peer/qemu_mig.py" "$1" "$2" "$3" $qns 2>"$out/qemu.err"); then
		echo "bench: qemu_mig.py $2 failed: $(tail -n 1 "$out/qemu.err")" >&2
		bench_error_json "$out/qemu.err"
		return 1
	fi
	python3 -c '
import json, sys
q = json.loads(sys.argv[1])
q["ok"] = q.get("status") == "completed" and q.get("total_ms") is not None
if not q["ok"]:
    q["error"] = "QEMU migration status %s" % q.get("status")
print(json.dumps(q))
sys.exit(0 if q["ok"] else 1)' "$q"
}
