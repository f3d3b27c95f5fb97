#!/usr/bin/env python3
"""Writes the gnuplot script and data of one figure; bench/plot.sh runs it.

usage: plot.py links SUMMARY.json DIR OUT.svg [TITLE]
       plot.py live DEMO.json DIR OUT.svg [TITLE]

links: total time against link rate, from bench/linkbench.sh's summary.json
  (bench/linksum.py): one solid line per livemig codec, one dashed line per
  QEMU multifd method, the same colour for the same codec.
live: remaining MiB (left axis) and throttle % (right axis, a step per round) from
  `livemig demo --json`'s "round_log" (top level, or in "source"): a list of
  {"round", "t_ms", "remaining_bytes", "dirty_pages_rate", "bandwidth_mbps",
  "throttle_pct", "expected_downtime_ms"}.
Writes DIR/plot.gp and its data files; Python 3 standard library only.
"""
import json
import os
import sys

COLOURS = {"auto": "#000000", "none": "#1f77b4", "lz4": "#2ca02c", "zstd": "#d62728",
           "deflate": "#9467bd", "zlib": "#8c564b"}
OTHER = ["#ff7f0e", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22"]
TERM = 'set terminal svg size 800,480 font "sans,12" background "#ffffff"'


def q(s):
    """A gnuplot double-quoted string."""
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def colour(name, n):
    return COLOURS.get(name, OTHER[n % len(OTHER)])


def fail(msg):
    sys.exit("plot: " + msg)


def links(summary, d, out, title):
    pts = [e for e in summary.get("links", []) if e.get("gbit_s")]
    if not pts:
        fail("no link in the summary has a rate (gbit_s)")
    pts.sort(key=lambda e: e["gbit_s"])
    series = [("livemig", c) for c in summary.get("livemig_codecs", [])] + \
             [("qemu", m) for m in summary.get("qemu_methods", [])]
    plots, extra = [], 0
    for n, (impl, method) in enumerate(series):
        rows = []
        for e in pts:
            m = next((m for m in e["methods"] if m["impl"] == impl and m["method"] == method), None)
            if m and m.get("total_ms_median") is not None:
                rows.append("%g %g" % (e["gbit_s"], m["total_ms_median"] / 1e3))
        if not rows:
            continue  # every run failed: no line, the table says why
        f = os.path.join(d, "s%d.dat" % n)
        with open(f, "w") as fh:
            fh.write("\n".join(rows) + "\n")
        if method not in COLOURS:
            extra += 1
        c = colour(method, extra)
        if impl == "livemig":
            style = "lw %d dt 1 pt 7 ps 0.8" % (3 if method == "auto" else 2)
            name = "livemig " + method
        else:
            style = "lw 2 dt 2 pt 6 ps 1"
            name = "QEMU " + method
        plots.append("%s using 1:2 with linespoints lc rgb %s %s title %s" % (
            q(f), q(c), style, q(name)))
    if not plots:
        fail("no method has a completed run")
    # An unshaped link sits at its iperf3 rate, often close to a shaped
    # one: its label takes two short lines.
    tics = ", ".join("%s %g" % (q(e["label"]) if e.get("gbit_s_from") == "tc rate" else
                                '"%s\\n%.1f Gbit/s"' % (e["label"].split()[0], e["gbit_s"]),
                                e["gbit_s"]) for e in pts)
    lo, hi = pts[0]["gbit_s"], pts[-1]["gbit_s"]
    runs = summary.get("runs")
    size = summary.get("image_bytes")
    title = title or "Total time against link rate: %s%s channels, median of %s run%s" % (
        "%d MiB image, " % (size >> 20) if size else "", summary.get("channels", "?"),
        runs, "" if runs == 1 else "s")
    return "\n".join([
        TERM, "set output %s" % q(out), "set title %s" % q(title),
        "set logscale x", "set logscale y",
        "set xrange [%g:%g]" % (lo / 1.3, hi * 1.3),
        "set xtics (%s)" % tics, "set mxtics 10",
        "set xlabel %s" % q("link (Gbit/s, log scale)"),
        "set ylabel %s" % q("total time (s, log scale)"),
        "set grid xtics ytics mytics lc rgb \"#dddddd\"",
        "set key outside right top",
        "plot " + ", \\\n\t".join(plots), ""])


def round_log(demo):
    for obj in (demo, demo.get("source") or {}):
        if isinstance(obj, dict) and isinstance(obj.get("round_log"), list):
            return obj["round_log"]
    fail("no round_log in the demo's JSON (livemig demo --json of a live migration)")


def live(demo, d, out, title):
    rows = []
    for n, r in enumerate(round_log(demo)):
        try:
            rows.append((int(r["round"]), float(r["remaining_bytes"]) / 2**20,
                         float(r.get("throttle_pct", 0))))
        except (KeyError, TypeError, ValueError) as e:
            fail("round_log[%d]: bad or missing field %s" % (n, e))
    if not rows:
        fail("round_log is empty")
    rows.sort()
    f = os.path.join(d, "rounds.dat")
    with open(f, "w") as fh:
        fh.write("".join("%d %g %g\n" % r for r in rows))
    s = demo.get("source") or {}
    if not title:
        title = "Live migration per round: codec %s" % s.get("codec", "?")
        if s.get("downtime_ms") is not None:
            title += ", downtime %s ms" % s["downtime_ms"]
        if demo.get("verified") is not None:
            title += ", verified" if demo["verified"] else ", not verified"
    last = rows[-1][0]
    return "\n".join([
        TERM, "set output %s" % q(out), "set title %s" % q(title),
        "set xrange [%g:%g]" % (rows[0][0] - 0.5, last + 0.5),
        "set xtics 1" if last - rows[0][0] <= 30 else "set xtics autofreq",
        "set xlabel \"round\"",
        "set ylabel \"remaining (MiB)\"", "set yrange [0:*]",
        "set y2label \"throttle (%)\"", "set y2range [0:100]", "set y2tics 0,20,100",
        "set ytics nomirror",
        "set grid xtics ytics lc rgb \"#dddddd\"",
        "set key outside right top",
        "plot %s using 1:2 axes x1y1 with linespoints lc rgb \"#1f77b4\" lw 2 pt 7 ps 0.8 "
        "title \"remaining MiB\", \\\n\t%s using 1:3 axes x1y2 with histeps lc rgb \"#d62728\" "
        "lw 2 dt 2 title \"throttle %%\"" % (q(f), q(f)), ""])


def main():
    if len(sys.argv) not in (5, 6) or sys.argv[1] not in ("links", "live"):
        sys.exit(__doc__.split("\n\n")[1])
    kind, src, d, out = sys.argv[1:5]
    title = sys.argv[5] if len(sys.argv) > 5 else None
    try:
        with open(src) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (src, e))
    if not isinstance(data, dict):
        fail("%s: not a JSON object" % src)
    gp = (links if kind == "links" else live)(data, d, out, title)
    with open(os.path.join(d, "plot.gp"), "w") as f:
        f.write(gp)


if __name__ == "__main__":
    main()
