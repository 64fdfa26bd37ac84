#!/usr/bin/env python3
"""Report and plot of benches/scale.sh: a Markdown table on stdout and a PNG.

Usage: scale_plot.py RESULTS.csv [OUT.png]   (no PNG when OUT.png is "" or matplotlib is missing)
"""
import csv
import statistics
import sys
from collections import defaultdict

MIB = 1024.0
INPUT_MIB = 1024.0  # the fixed 1 GiB input
TARGET_MIB = 200e6 / 2**20  # the 200 MB peak-RSS target


def label(n):
    n = int(n)
    if n >= 1_000_000:
        return f"{n / 1e6:g} M"
    if n >= 1000:
        return f"{n / 1e3:g} k"
    return str(n)


def load(path):
    data = defaultdict(lambda: defaultdict(list))
    for r in csv.DictReader(open(path)):
        data[int(r["n"])][r["op"]].append(r)
    return dict(sorted(data.items()))


def f(r, k):
    return float(r[k]) if r.get(k) not in (None, "") else None


def cpu(r):
    return f(r, "user_s") + f(r, "sys_s")


def rss(r):
    return f(r, "rss_kib") / MIB


def joined(rows, fn, fmt):
    return " / ".join(fmt.format(fn(r)) for r in rows)


def table(data):
    """Two Markdown tables: the index (size, one-time sync, lookups) and the backups."""
    out = [
        "| blobs in the repository | index objects | local cache file"
        " | index sync, once: wall s (CPU s) | its peak RSS"
        " | claim µs, hit / miss | pending-pack commit ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, ops in data.items():
        sync, look = ops["sync"][0], ops["lookup"][0]
        hit, miss = f(look, "hit_us"), f(look, "miss_us")
        pending = f(ops["pending"][0], "mb") if ops.get("pending") else None
        out.append(
            f"| {label(n)} | {ops['index_objects'][0]['mb']} MB | {ops['cache_file'][0]['mb']} MB"
            f" | {f(sync, 'wall_s'):.1f} ({cpu(sync):.1f}) | {rss(sync):.0f} MiB"
            f" | {'-' if hit is None else f'{hit:.1f}'} / {miss:.1f}"
            f" | {'-' if pending is None else f'{pending:.1f}'} |"
        )
    out += [
        "",
        "| blobs | backup 1 GiB: wall s per round | CPU s | MiB/s (best) | peak RSS MiB"
        " | no-op backup: wall s | peak RSS MiB | others' CPU, cores | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, ops in data.items():
        b, z = ops["backup"], ops["noop"]
        best = min(f(r, "wall_s") for r in b)
        loads = [f(r, "load1") for r in b + z]
        others = [f(r, "others") for r in b if f(r, "others") is not None]
        out.append(
            f"| {label(n)}"
            f" | {joined(b, lambda r: f(r, 'wall_s'), '{:.1f}')}"
            f" | {joined(b, cpu, '{:.1f}')}"
            f" | {INPUT_MIB / best:.0f}"
            f" | {joined(b, rss, '{:.0f}')}"
            f" | {joined(z, lambda r: f(r, 'wall_s'), '{:.2f}')}"
            f" | {joined(z, rss, '{:.0f}')}"
            f" | {joined(b, lambda r: f(r, 'others') or 0.0, '{:.2f}') if others else '-'}"
            f" | {min(loads):.1f}–{max(loads):.1f} |"
        )
    return "\n".join(out)


def plot(data, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no plot: matplotlib missing; pip install matplotlib)", file=sys.stderr)
        return
    ns = list(data)
    xs = range(len(ns))
    labels = [label(n) + " blobs" for n in ns]
    fig, ax = plt.subplots(1, 3, figsize=(15, 5.2))
    w = 0.26

    def series(op, fn):
        vals = [[fn(r) for r in data[n][op]] for n in ns]
        mean = [statistics.mean(v) for v in vals]
        err = [[m - min(v) for m, v in zip(mean, vals)], [max(v) - m for m, v in zip(mean, vals)]]
        return mean, err

    def bars(a, k, mean, err, name, color):
        pos = [x + (k - 1) * w for x in xs]
        a.bar(pos, [m or 0.0 for m in mean], w, yerr=err, capsize=3, label=name, color=color)
        tops = [(m or 0.0) + (err[1][i] if err else 0.0) for i, m in enumerate(mean)]
        for p, m, top in zip(pos, mean, tops):
            text = "n/a" if m is None else f"{m:.0f}" if m >= 10 else f"{m:.1f}"
            a.annotate(text, (p, top), ha="center", va="bottom", fontsize=8,
                       xytext=(0, 2), textcoords="offset points")

    a = ax[0]
    bars(a, 0, *series("backup", lambda r: f(r, "wall_s")), "backup 1 GiB, wall", "tab:blue")
    bars(a, 1, *series("backup", cpu), "backup 1 GiB, CPU", "tab:cyan")
    bars(a, 2, *series("sync", lambda r: f(r, "wall_s")), "index sync (once), wall", "tab:orange")
    a.set_title("Time (s)")

    a = ax[1]
    bars(a, 0, *series("backup", rss), "backup 1 GiB", "tab:blue")
    bars(a, 1, *series("noop", rss), "no-op backup", "tab:cyan")
    bars(a, 2, *series("sync", rss), "index sync (once)", "tab:orange")
    a.axhline(TARGET_MIB, color="tab:red", ls="--", lw=1)
    a.text(-0.45, TARGET_MIB, "200 MB target", color="tab:red", ha="left", va="bottom",
           fontsize=8)
    a.set_title("Peak RSS (MiB)")

    a = ax[2]
    hits = [f(data[n]["lookup"][0], "hit_us") for n in ns]
    misses = [f(data[n]["lookup"][0], "miss_us") for n in ns]
    bars(a, 0.5, hits, None, "hit (blob stored)", "tab:green")
    bars(a, 1.5, misses, None, "miss (new blob)", "tab:olive")
    a.set_title("Dedup lookup, PackWriter::claim (µs)")

    for a in ax:
        a.set_xticks(list(xs), labels)
        a.set_xlabel("blobs already in the repository")
        a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        a.set_ylim(0, a.get_ylim()[1] * 1.08)
        a.grid(axis="y", alpha=0.3)
    loads = [f(r, "load1") for ops in data.values() for rows in ops.values() for r in rows
             if f(r, "load1") is not None]
    fig.suptitle("backup-to-s3: cost against repository size (local repository; 2 shared vCPUs,"
                 f" 1-min load {min(loads):.1f}–{max(loads):.1f}; bars: mean, whiskers: min–max"
                 " over rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"(plot written to {path})", file=sys.stderr)


def main():
    data = load(sys.argv[1])
    print(table(data))
    if len(sys.argv) > 2 and sys.argv[2]:
        plot(data, sys.argv[2])


if __name__ == "__main__":
    main()
