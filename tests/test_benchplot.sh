#!/usr/bin/env bash
# The benchmark's summary and figures, from hand-written runs: bench/linksum.py
# (medians, failed runs counted and their errors kept, ratios of auto to the
# best fixed codec and the best QEMU method, codec mix in each shape the
# sender's JSON may take, the markdown table) and bench/plot.sh (an SVG per
# figure with every series named, clear errors on bad input). The plots are
# skipped, saying why, when gnuplot is not installed.
# Usage: tests/test_benchplot.sh path/to/bench
set -u

bench=${1:?usage: $0 path/to/bench}
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_benchplot.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}

# Two links, two runs each (a third on 1gbit). At 1gbit auto completes 2 of 3
# with its mix as a dict; at 10gbit every auto run is refused. lz4's mix is a
# list by codec id. QEMU zlib fails once.
r() { # r LINK RUN IMPL METHOD RESULT
	echo "{\"link\": \"$1\", \"run\": $2, \"impl\": \"$3\", \"method\": \"$4\", \"result\": $5}"
}
mixa='{"none": {"packets": 10, "bytes_in": 1000, "bytes_out": 1000}, "lz4": {"packets": 30, "bytes_in": 3000, "bytes_out": 900}}'
mixb='[{"packets": 2, "bytes_in": 100, "bytes_out": 100}, {}, {}, {"packets": 8, "bytes_in": 400, "bytes_out": 100}]'
refused='{"ok": false, "error": "livemig send: unknown codec '"'"'auto'"'"'"}'
lm() { echo "{\"ok\": true, \"total_ms\": $1, \"transferred\": 2000000, \"sender_cpu_s\": 1.5, \"receiver_cpu_s\": 0.5${2:+, \"codec_mix\": $2}}"; }
qm() { echo "{\"ok\": true, \"status\": \"completed\", \"total_ms\": $1, \"downtime_ms\": 20}"; }
{
	for run in 1 2 3; do
		r 1gbit $run iperf3 "-P 2" '{"ok": true, "mbps": 95'$run'.0}'
		case $run in
		1) r 1gbit 1 livemig auto "$(lm 1000 "$mixa")" ;;
		2) r 1gbit 2 livemig auto '{"ok": false, "error": "livemig send: migration failed: timeout"}' ;;
		3) r 1gbit 3 livemig auto "$(lm 1200 "$mixa")" ;;
		esac
		r 1gbit $run qemu none "$(qm $((5000 + run)))"
		r 1gbit $run livemig none "$(lm $((2600 + run * 10)))"
		r 1gbit $run qemu zlib "$([ $run = 2 ] && echo '{"ok": false, "error": "QEMU migration status failed"}' || qm 10000)"
		r 1gbit $run livemig lz4 "$(lm $((1300 - run * 100)) "$mixb")"
		[ $run = 3 ] && break
		r 10gbit $run iperf3 "-P 2" '{"ok": true, "mbps": 940'$run'.0}'
		r 10gbit $run livemig auto "$refused"
		r 10gbit $run qemu none "$(qm $((900 + run * 100)))"
		r 10gbit $run livemig none "$(lm $((600 + run)))"
		r 10gbit $run qemu zlib "$(qm 8000)"
		r 10gbit $run livemig lz4 "$(lm 1100)"
		r none $run iperf3 "-P 2" '{"ok": true, "mbps": 16000.0}'
		r none $run livemig none "$(lm 550)"
	done
} >"$tmp/runs.jsonl"

if ! python3 "$bench/linksum.py" --codecs "auto none lz4" --qemu "none zlib" \
	--links "1gbit 10gbit none" "$tmp/runs.jsonl" "$tmp/summary.json" "$tmp/table.md"; then
	echo "FAIL: linksum.py exited non-zero"
	exit 1
fi

# get PYTHON-EXPRESSION: its value over the summary (s), the link by name
# (L('1gbit')) and a method of it (M('1gbit', 'livemig', 'auto')).
get() {
	python3 - "$tmp/summary.json" "$1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
L = lambda n: next(e for e in s["links"] if e["link"] == n)
M = lambda n, i, m: next(x for x in L(n)["methods"] if x["impl"] == i and x["method"] == m)
print(json.dumps(eval(sys.argv[2])))
EOF
}
expect() { # expect EXPRESSION JSON-VALUE
	local got
	got=$(get "$1")
	if [ "$got" = "$2" ]; then pass "$1 = $2"; else fail "$1 = $got, want $2"; fi
}

echo "== summary"
expect 's["channels"]' 2
expect 's["runs"]' 3
expect '[e["link"] for e in s["links"]]' '["1gbit", "10gbit", "none"]'
expect '[e["gbit_s"] for e in s["links"]]' '[1.0, 10.0, 16.0]'
expect 'L("none")["gbit_s_from"]' '"iperf3"'
expect 'L("1gbit")["iperf3_mbps_median"]' 952.0
expect '[M("1gbit", "livemig", "auto")[k] for k in ("runs", "ok", "failures")]' '[3, 2, 1]'
expect 'M("1gbit", "livemig", "auto")["total_ms_median"]' 1100.0
expect 'M("1gbit", "livemig", "auto")["errors"]' '["livemig send: migration failed: timeout"]'
expect 'M("1gbit", "livemig", "auto")["codec_mix"]["lz4"]' \
	'{"packets": 60, "bytes_in": 6000, "bytes_out": 1800, "share": 0.75}'
expect 'M("1gbit", "livemig", "lz4")["codec_mix"]["lz4"]["packets"]' 24
expect 'M("1gbit", "livemig", "lz4")["codec_mix"]["none"]["share"]' 0.2
expect 'M("1gbit", "livemig", "lz4")["total_ms_median"]' 1100.0
expect 'M("1gbit", "qemu", "zlib")["failures"]' 1
expect 'M("1gbit", "qemu", "zlib")["total_ms_median"]' 10000.0
expect 'L("1gbit")["best_fixed"]' '"lz4"'
expect 'L("1gbit")["auto_over_best_fixed"]' 1.0
expect 'L("1gbit")["best_qemu"]' '"none"'
expect 'L("1gbit")["auto_over_best_qemu"]' 0.22
expect '[M("10gbit", "livemig", "auto")[k] for k in ("ok", "failures", "total_ms_median")]' '[0, 2, null]'
expect 'L("10gbit")["auto_over_best_fixed"]' null
expect 'L("10gbit")["best_fixed"]' '"none"'
expect 'M("10gbit", "qemu", "none")["total_ms"]' '[1000, 1100]'
expect '[m["method"] for m in L("none")["methods"]]' '["none"]'

echo "== table"
row() { grep "^| $1 |" "$tmp/table.md"; }
check "a header names every column" grep -q '^| link | iperf3 -P 2 | livemig auto | livemig none | livemig lz4 | QEMU none | QEMU zlib | auto / best fixed | auto / best QEMU |$' "$tmp/table.md"
check "1gbit row: medians, partial runs, fastest in bold, ratios" \
	grep -qF '| 1gbit | 952 Mbit/s | **1100 (2 of 3)** | 2620 | **1100** | 5002 | 10000 (2 of 3) | 1.00 (lz4) | 0.22 (none) |' "$tmp/table.md"
check "10gbit row: auto failed, no ratio" \
	grep -qF '| 10gbit | 9402 Mbit/s | failed | **602** | 1100 | 1050 | 8000 | – | – |' "$tmp/table.md"
check "unshaped row: methods never run are a dash" \
	grep -qF '| unshaped veth | 16000 Mbit/s | – | **550** | – | – | – | – | – |' "$tmp/table.md"
check "the refused codec's error is listed" grep -qF "10gbit, livemig auto: 2 of 2 runs failed: livemig send: unknown codec 'auto'" "$tmp/table.md"
check "auto's codec mix is listed" grep -qF '1gbit, auto'"'"'s codec mix (share of page bytes): lz4 75%, none 25%' "$tmp/table.md"
[ -n "$(row 1gbit)" ] || fail "no 1gbit row"

echo "== bad input"
printf '{"link": "1gbit"\n' >"$tmp/bad.jsonl"
check "a broken runs line is an error naming the line" \
	bash -c "python3 '$bench/linksum.py' '$tmp/bad.jsonl' '$tmp/x.json' 2>&1 | grep -q 'line 1'"

echo "== plots"
if ! command -v gnuplot >/dev/null; then
	echo "SKIP: plots: gnuplot not found (apt-get install gnuplot-nox, or scripts/deps.sh bench)"
else
	check "links plot drawn" bash "$bench/plot.sh" links "$tmp/summary.json" "$tmp/links.svg"
	for t in "livemig none" "livemig lz4" "livemig auto" "QEMU none" "QEMU zlib" "unshaped" "16.0 Gbit/s"; do
		check "links plot names $t" grep -qF "$t" "$tmp/links.svg"
	done
	# A round_log as livemig demo --json gives it: two rounds throttled.
	cat >"$tmp/demo.json" <<'EOF'
{"source": {"codec": "lz4", "downtime_ms": 212, "rounds": 5}, "verified": true,
 "round_log": [
  {"round": 1, "t_ms": 4300, "remaining_bytes": 268435456, "dirty_pages_rate": 260000, "bandwidth_mbps": 940, "throttle_pct": 0, "expected_downtime_ms": 2280},
  {"round": 2, "t_ms": 6400, "remaining_bytes": 201326592, "dirty_pages_rate": 250000, "bandwidth_mbps": 935, "throttle_pct": 0, "expected_downtime_ms": 1720},
  {"round": 3, "t_ms": 8100, "remaining_bytes": 104857600, "dirty_pages_rate": 120000, "bandwidth_mbps": 938, "throttle_pct": 60, "expected_downtime_ms": 890},
  {"round": 4, "t_ms": 9000, "remaining_bytes": 20971520, "dirty_pages_rate": 30000, "bandwidth_mbps": 941, "throttle_pct": 85, "expected_downtime_ms": 180},
  {"round": 5, "t_ms": 9200, "remaining_bytes": 4194304, "dirty_pages_rate": 9000, "bandwidth_mbps": 930, "throttle_pct": 85, "expected_downtime_ms": 36}]}
EOF
	check "live plot drawn" bash "$bench/plot.sh" live "$tmp/demo.json" "$tmp/live.svg"
	for t in "remaining MiB" "throttle %" "codec lz4, downtime 212 ms, verified"; do
		check "live plot names $t" grep -qF "$t" "$tmp/live.svg"
	done
	# fails_with JSON PATTERN: plot.sh live refuses JSON, says PATTERN, draws nothing.
	fails_with() {
		local msg
		rm -f "$tmp/n.svg"
		if msg=$(bash "$bench/plot.sh" live "$1" "$tmp/n.svg" 2>&1); then
			echo "plot.sh accepted $1"
			return 1
		fi
		grep -q "$2" <<<"$msg" && [ ! -e "$tmp/n.svg" ] || { echo "got: $msg"; return 1; }
	}
	echo '{"source": {"codec": "none"}}' >"$tmp/noround.json"
	check "a demo without round_log is an error saying so" fails_with "$tmp/noround.json" 'no round_log'
	echo '{"round_log": [{"round": 1}]}' >"$tmp/short.json"
	check "a round without remaining_bytes is an error naming it" \
		fails_with "$tmp/short.json" "round_log\[0\].*remaining_bytes"
fi

[ "$failures" -eq 0 ] && echo "all passed" || echo "$failures failed"
[ "$failures" -eq 0 ]
