#!/usr/bin/env python3
"""report.py - Markdown report of compare.sh / peers.sh CSVs, with ratios against the peers.

Usage: report.py [--data DIR] [--loads LOADS.csv] [--ours ours] results.csv [...]
CSV columns: round,tool,dataset,op,wall_s,cpu_s,max_rss_kb,repo_bytes

Per dataset, two tables (time; memory and size), rows = operations. Times are the best (min) of
the rounds; ratios are the median over rounds of ours/peer measured in the same round (the tools
ran back to back, so a busy moment of the shared machine hits both). Then the targets of issue 6,
each marked met or missed.
"""
import csv
import os
import statistics
import subprocess
import sys
from collections import defaultdict

args = sys.argv[1:]
data, loads, ours = None, None, "ours"
while args and args[0].startswith("--"):
    opt, val, args = args[0], args[1], args[2:]
    if opt == "--data":
        data = val
    elif opt == "--loads":
        loads = val
    elif opt == "--ours":
        ours = val

rows = []
for fn in args:
    with open(fn) as f:
        rows += list(csv.DictReader(f))


def norm(op):
    for p in ("init", "backup-noop", "restore"):
        if op == p or op.startswith(p + "-"):
            return p
    if op.startswith("verify"):
        return "verify"
    if op.endswith(":n/a"):
        return op[:-4]
    return op


by = defaultdict(list)  # (ds, tool, op) -> rows
na = set()
tools, dss, ops = [], [], []
for r in rows:
    op = norm(r["op"])
    if r["op"].endswith(":n/a"):
        na.add((r["dataset"], r["tool"], op))
    for lst, v in ((tools, r["tool"]), (dss, r["dataset"]), (ops, op)):
        if v not in lst:
            lst.append(v)
    if "FAIL" not in r["op"] and not r["op"].endswith(":n/a"):
        by[(r["dataset"], r["tool"], op)].append(r)
peers = [t for t in tools if t != ours]
ops = [o for o in ops if o != "verify"] + (["verify"] if "verify" in ops else [])


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def vals(ds, t, op, key):
    return [v for v in (num(r[key]) for r in by.get((ds, t, op), [])) if v is not None]


def best(ds, t, op, key, how=min):
    v = vals(ds, t, op, key)
    return how(v) if v else None


def per_round(ds, t, op, key, agg=min):
    d = defaultdict(list)
    for r in by.get((ds, t, op), []):
        v = num(r[key])
        if v is not None:
            d[r["round"]].append(v)
    return {k: agg(v) for k, v in d.items()}


def ratio(ds, op, key, peer, agg=min):
    """Median over rounds of ours/peer (same round); falls back to best/best."""
    a, b = per_round(ds, ours, op, key, agg), per_round(ds, peer, op, key, agg)
    rs = [a[k] / b[k] for k in a if k in b and b[k]]
    if rs:
        return statistics.median(rs)
    x, y = best(ds, ours, op, key), best(ds, peer, op, key)
    return x / y if x is not None and y else None


def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def ds_bytes(ds):
    if not data:
        return None
    try:
        return int(subprocess.check_output(["du", "-sb", os.path.join(data, ds)]).split()[0])
    except Exception:
        return None


load_by_ds = defaultdict(list)
if loads and os.path.exists(loads):
    with open(loads) as f:
        for r in csv.DictReader(f):
            for k in ("load1_before", "load1_after"):
                if num(r.get(k)) is not None:
                    load_by_ds[r["dataset"]].append(num(r[k]))

out = []
targets = []
for ds in dss:
    size = ds_bytes(ds)
    nrounds = len({r["round"] for r in rows if r["dataset"] == ds})
    head = f"\n### {ds}" + (f" ({size / 1e6:.0f} MB)" if size else "") + f", {nrounds} round(s)"
    if load_by_ds[ds]:
        lv = load_by_ds[ds]
        head += f", 1-min load {min(lv):.1f}–{max(lv):.1f} (2 cores)"
    out.append(head + "\n")
    tl = tools
    out.append("| op | " + " | ".join(f"{t} wall s" for t in tl) + " | "
               + " | ".join(f"×{p}" for p in peers) + " | "
               + " | ".join(f"{t} CPU s" for t in tl) + " | "
               + " | ".join(f"CPU ×{p}" for p in peers) + " |")
    out.append("|---" * (1 + 2 * len(tl) + 2 * len(peers)) + "|")
    for op in ops:
        if op == "verify":
            cells = ["verify"] + ["/".join(sorted({r["op"].split(":")[-1] for r in rows
                                                    if r["dataset"] == ds and r["tool"] == t
                                                    and r["op"].startswith("verify")})) or "-"
                                  for t in tl]
            out.append("| " + " | ".join(cells + [""] * (len(tl) + 2 * len(peers))) + " |")
            continue
        if not any(by.get((ds, t, op)) or (ds, t, op) in na for t in tl):
            continue
        cells = [op]
        for t in tl:
            cells.append("n/a" if (ds, t, op) in na else fmt(best(ds, t, op, "wall_s")))
        cells += [fmt(ratio(ds, op, "wall_s", p)) for p in peers]
        for t in tl:
            cells.append("n/a" if (ds, t, op) in na else fmt(best(ds, t, op, "cpu_s", statistics.median)))
        cells += [fmt(ratio(ds, op, "cpu_s", p, statistics.median)) for p in peers]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("| op | " + " | ".join(f"{t} peak RSS MiB" for t in tl) + " | "
               + " | ".join(f"RSS ×{p}" for p in peers) + " | "
               + " | ".join(f"{t} repo MB" for t in tl) + " | "
               + " | ".join(f"repo ×{p}" for p in peers) + " |")
    out.append("|---" * (1 + 2 * len(tl) + 2 * len(peers)) + "|")
    for op in ops:
        if op == "verify" or not any(by.get((ds, t, op)) for t in tl):
            continue
        cells = [op]
        for t in tl:
            v = best(ds, t, op, "max_rss_kb", max)
            cells.append(fmt(v / 1024, 0) if v else "-")
        cells += [fmt(ratio(ds, op, "max_rss_kb", p, max)) for p in peers]
        for t in tl:
            v = best(ds, t, op, "repo_bytes", max)
            cells.append(fmt(v / 1e6, 1) if v else "-")
        cells += [fmt(ratio(ds, op, "repo_bytes", p, max)) for p in peers]
        out.append("| " + " | ".join(cells) + " |")
    if size:
        out.append("")
        out.append("| throughput (best round) | " + " | ".join(tl) + " |")
        out.append("|---" * (1 + len(tl)) + "|")
        for label, op in (("first backup MB/s", "backup-full"), ("restore MB/s", "restore"),
                          ("check --read-data MB/s", "check-read-data")):
            out.append(f"| {label} | " + " | ".join(
                fmt(size / 1e6 / best(ds, t, op, "wall_s"), 0) if best(ds, t, op, "wall_s") else "-"
                for t in tl) + " |")

    # targets (against restic)
    ref = "restic"
    if ref not in tools:
        continue

    def tgt(name, op, key, limit, agg=min):
        r = ratio(ds, op, key, ref, agg)
        cpu = fmt(ratio(ds, op, "cpu_s", ref, statistics.median)) if key == "wall_s" else ""
        if (ds, ours, op) in na:
            targets.append((ds, name, "n/a", cpu, f"≤ {limit}", "n/a"))
        elif r is not None:
            targets.append((ds, name, fmt(r), cpu, f"≤ {limit}", "met" if r <= limit else "missed"))

    tgt("first backup wall", "backup-full", "wall_s", 0.5)
    if ds == "small-files":
        tgt("no-op backup wall (many small files)", "backup-noop", "wall_s", 0.25)
    tgt("backup after modification wall", "backup-modified", "wall_s", 0.5)
    tgt("restore wall", "restore", "wall_s", 0.5)
    rss = best(ds, ours, "restore", "max_rss_kb", max)
    if rss:
        targets.append((ds, "restore peak RSS (MiB)", fmt(rss / 1024, 0), "", "≤ 200",
                        "met" if rss / 1024 <= 200 else "missed"))
    tgt("check --read-data wall", "check-read-data", "wall_s", 0.5)
    worst = None
    for op in ops:
        if op == "verify":
            continue
        r = ratio(ds, op, "max_rss_kb", ref, max)
        if r is not None and (worst is None or r > worst[0]):
            worst = (r, op)
    if worst:
        targets.append((ds, f"peak RSS, worst op ({worst[1]})", fmt(worst[0]), "", "≤ 0.5",
                        "met" if worst[0] <= 0.5 else "missed"))
    last = "prune-keep-last-1" if by.get((ds, ours, "prune-keep-last-1")) else "backup-modified"
    tgt(f"repository size after {last}", last, "repo_bytes", 1.0, max)

if targets:
    out.append("\n### Targets (ratios: ours / restic, median over rounds; judged on the value)\n")
    out.append("| dataset | target | value | CPU-time ratio | limit | |")
    out.append("|---|---|---|---|---|---|")
    for t in targets:
        out.append("| " + " | ".join(t) + " |")
print("\n".join(out))
