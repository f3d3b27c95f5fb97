#!/usr/bin/env python3
"""Summary of a bench/linkbench.sh run: medians per link and method, and a
markdown table ready for docs/benchmarks.md.

usage: linksum.py [--image F] [--channels N] [--links L] [--codecs C] [--qemu M]
                  RUNS.jsonl SUMMARY.json [TABLE.md]

RUNS.jsonl holds one line per run: {"link", "run", "impl" ("livemig", "qemu"
or "iperf3"), "method", "result": {"ok", "total_ms", ... or "error"}}.
--links, --codecs and --qemu give the order of rows and columns (default:
the order the runs came in). Python 3 standard library only.

summary.json: {"bench": "linkbench", "channels", "runs", "links": [{"link",
"label", "gbit_s" (the x of the plot: a shaped link's tc rate, else the
iperf3 median), "iperf3_mbps_median", "methods": [{"impl", "method", "runs",
"ok", "failures", "total_ms_median", "total_ms" (every ok run), "errors",
"codec_mix" (the sender's, summed over the ok runs, with each codec's
"share" of the page bytes)}], "best_fixed", "auto_over_best_fixed",
"best_qemu", "auto_over_best_qemu"}]}.
"""
import argparse
import json
import os
import re
import statistics
import sys

# lm_codec_id order (include/livemig.h): codec_mix may be a list by id.
CODEC_IDS = ["none", "deflate", "zstd", "lz4", "zlib"]
UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
         "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def tc_rate_gbit(rate):
    """A tc rate ("1gbit", "500mbit", "125mbps") in Gbit/s, or None."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmgt]?i?)(bit|bps)?", rate.lower())
    if not m:
        return None
    bits = float(m.group(1)) * UNITS[m.group(2)]
    if m.group(3) == "bps":  # tc's bps is bytes per second
        bits *= 8
    return bits / 1e9


def link_label(link):
    return {"none": "unshaped veth", "lo": "loopback"}.get(link, link)


def norm_mix(mix):
    """codec_mix as {codec: {packets, bytes_in, bytes_out}}, whichever of
    the shapes the sender's JSON uses: a dict by name, a list of objects
    naming their codec, or a list by codec id."""
    out = {}
    if isinstance(mix, dict):
        items = list(mix.items())
    elif isinstance(mix, list):
        items = []
        for i, e in enumerate(mix):
            if not isinstance(e, dict):
                continue
            name = e.get("codec", e.get("name"))
            if name is None:
                name = CODEC_IDS[i] if i < len(CODEC_IDS) else str(i)
            items.append((name, e))
    else:
        return out
    for name, e in items:
        if not isinstance(e, dict):
            continue
        c = {k: int(e.get(k, 0) or 0) for k in ("packets", "bytes_in", "bytes_out")}
        if any(c.values()):
            out[str(name)] = c
    return out


def sum_mix(results):
    total = {}
    for r in results:
        for name, c in norm_mix(r.get("codec_mix")).items():
            t = total.setdefault(name, {"packets": 0, "bytes_in": 0, "bytes_out": 0})
            for k in t:
                t[k] += c[k]
    page_bytes = sum(c["bytes_in"] for c in total.values())
    for c in total.values():
        c["share"] = round(c["bytes_in"] / page_bytes, 4) if page_bytes else 0.0
    return total or None


def med(xs, nd=1):
    xs = [x for x in xs if x is not None]
    return round(float(statistics.median(xs)), nd) if xs else None


def method_summary(impl, method, results):
    ok = [r for r in results if r.get("ok")]
    s = {"impl": impl, "method": method, "runs": len(results), "ok": len(ok),
         "failures": len(results) - len(ok),
         "total_ms_median": med([r.get("total_ms") for r in ok]),
         "total_ms": [r.get("total_ms") for r in ok],
         "errors": sorted({r.get("error", "?") for r in results if not r.get("ok")})}
    if impl == "livemig":
        s["transferred_mb_median"] = med([r["transferred"] / 1e6 for r in ok if "transferred" in r])
        s["sender_cpu_s_median"] = med([r.get("sender_cpu_s") for r in ok], 2)
        s["receiver_cpu_s_median"] = med([r.get("receiver_cpu_s") for r in ok], 2)
        mix = sum_mix(ok)
        if mix:
            s["codec_mix"] = mix
    else:
        s["downtime_ms_median"] = med([r.get("downtime_ms") for r in ok])
    return s


def best(methods, impl, exclude=()):
    c = [m for m in methods if m["impl"] == impl and m["method"] not in exclude
         and m["total_ms_median"] is not None]
    return min(c, key=lambda m: m["total_ms_median"]) if c else None


def ordered(wanted, seen):
    """wanted's order, then whatever else the runs hold."""
    out = [x for x in wanted if x in seen]
    return out + [x for x in seen if x not in out]


def summarize(lines, opt):
    runs_by = {}  # (link, impl, method) -> [result]
    seen = {"link": [], "livemig": [], "qemu": []}
    max_run = 0
    for ln in lines:
        key = (ln["link"], ln["impl"], ln["method"])
        runs_by.setdefault(key, []).append(ln["result"])
        max_run = max(max_run, int(ln.get("run", 0)))
        if ln["link"] not in seen["link"]:
            seen["link"].append(ln["link"])
        if ln["impl"] in ("livemig", "qemu") and ln["method"] not in seen[ln["impl"]]:
            seen[ln["impl"]].append(ln["method"])
    channels = opt.channels
    if channels is None:  # linkbench names iperf3's runs "-P CHANNELS"
        ch = [ln["method"].split()[-1] for ln in lines if ln["impl"] == "iperf3"]
        channels = int(ch[0]) if ch and ch[0].isdigit() else None
    codecs = ordered(opt.codecs.split(), seen["livemig"])
    qemu = ordered(opt.qemu.split(), seen["qemu"])
    links = []
    for link in ordered(opt.links.split(), seen["link"]):
        iperf = [r.get("mbps") for (l, i, _), rs in runs_by.items()
                 if l == link and i == "iperf3" for r in rs if r.get("ok")]
        e = {"link": link, "label": link_label(link), "iperf3_mbps_median": med(iperf)}
        g = tc_rate_gbit(link)
        e["gbit_s"] = round(g, 3) if g is not None else (
            round(e["iperf3_mbps_median"] / 1e3, 3) if e["iperf3_mbps_median"] else None)
        e["gbit_s_from"] = "tc rate" if g is not None else "iperf3"
        e["methods"] = [method_summary(impl, m, runs_by[(link, impl, m)])
                        for impl, ms in (("livemig", codecs), ("qemu", qemu))
                        for m in ms if (link, impl, m) in runs_by]
        auto = next((m for m in e["methods"] if m["impl"] == "livemig" and m["method"] == "auto"), None)
        for name, b in (("fixed", best(e["methods"], "livemig", ("auto",))),
                        ("qemu", best(e["methods"], "qemu"))):
            e["best_" + name] = b["method"] if b else None
            e["auto_over_best_" + name] = (
                round(auto["total_ms_median"] / b["total_ms_median"], 3)
                if b and auto and auto["total_ms_median"] is not None else None)
        links.append(e)
    return {"bench": "linkbench", "image": opt.image,
            "image_bytes": os.path.getsize(opt.image) if opt.image and os.path.exists(opt.image) else None,
            "channels": channels, "runs": max_run, "livemig_codecs": codecs,
            "qemu_methods": qemu, "links": links}


def cell(m):
    if m is None:
        return "–"
    if m["total_ms_median"] is None:
        return "failed"
    t = "%.0f" % m["total_ms_median"]
    return t if not m["failures"] else "%s (%d of %d)" % (t, m["ok"], m["runs"])


def table(summary):
    codecs, qemu = summary["livemig_codecs"], summary["qemu_methods"]
    ch = summary["channels"] if summary["channels"] is not None else "?"
    head = (["link", "iperf3 -P %s" % ch] + ["livemig " + c for c in codecs]
            + ["QEMU " + q for q in qemu])
    if "auto" in codecs:
        head += ["auto / best fixed", "auto / best QEMU"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for e in summary["links"]:
        by = {(m["impl"], m["method"]): m for m in e["methods"]}
        cells = [cell(by.get(("livemig", c))) for c in codecs] + \
                [cell(by.get(("qemu", q))) for q in qemu]
        ok = [m["total_ms_median"] for m in e["methods"] if m["total_ms_median"] is not None]
        if ok:  # the fastest of the row in bold
            cells = ["**%s**" % c if c.split(" ")[0] == "%.0f" % min(ok) else c for c in cells]
        ip = e["iperf3_mbps_median"]
        row = [e["label"], "%.0f Mbit/s" % ip if ip else "–"] + cells
        if "auto" in codecs:
            for k in ("fixed", "qemu"):
                r = e["auto_over_best_" + k]
                row.append("%.2f (%s)" % (r, e["best_" + k]) if r is not None else "–")
        rows.append("| " + " | ".join(row) + " |")
        for m in e["methods"]:
            if m["errors"]:
                notes.append("- %s, %s %s: %d of %d runs failed: %s" % (
                    e["label"], "livemig" if m["impl"] == "livemig" else "QEMU", m["method"],
                    m["failures"], m["runs"], "; ".join(m["errors"])))
            mix = m.get("codec_mix")
            if m["method"] == "auto" and mix:
                notes.append("- %s, auto's codec mix (share of page bytes): %s" % (
                    e["label"], ", ".join("%s %.0f%%" % (c, 100 * v["share"]) for c, v in
                                          sorted(mix.items(), key=lambda x: -x[1]["share"]))))
    text = "\n".join(rows) + "\n"
    runs = summary["runs"]
    text = ("Total time in ms, median of %d run%s, %s channels; \"(k of n)\": only k runs "
            "completed.\n\n" % (runs, "" if runs == 1 else "s", ch)) + text
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image")
    ap.add_argument("--channels", type=int)
    ap.add_argument("--links", default="")
    ap.add_argument("--codecs", default="")
    ap.add_argument("--qemu", default="")
    ap.add_argument("runs")
    ap.add_argument("summary")
    ap.add_argument("table", nargs="?")
    opt = ap.parse_args()
    lines = []
    with open(opt.runs) as f:
        for n, ln in enumerate(f, 1):
            if not ln.strip():
                continue
            try:
                lines.append(json.loads(ln))
            except ValueError as e:
                sys.exit("linksum: %s line %d: %s" % (opt.runs, n, e))
    if not lines:
        sys.exit("linksum: %s holds no runs" % opt.runs)
    s = summarize(lines, opt)
    with open(opt.summary, "w") as f:
        json.dump(s, f, indent=1)
        f.write("\n")
    t = table(s)
    if opt.table:
        with open(opt.table, "w") as f:
            f.write(t)
    else:
        sys.stdout.write(t)


if __name__ == "__main__":
    main()
