#!/usr/bin/env python3
"""A log-like corpus that is not in the harness: 24 files of ~60 MB of access and application
log lines (zstd -3 compresses them about 3.7:1, /usr about 3:1). Used in session 13 as a
held-out check of the first-backup, restore and check ratios on compressible text.

Usage: benches/make-logs-corpus.py DIR   (seeded: the same bytes every time; ~1.4 GB)
"""
import os
import random
import sys

PATHS = ["/api/v1/users", "/api/v1/orders", "/static/app.js", "/login", "/api/v2/search?q=",
         "/healthz", "/metrics"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/7.88.1", "Go-http-client/1.1",
          "python-requests/2.31"]
LEVELS = ["INFO", "WARN", "ERROR", "DEBUG"]


def line(rng, t):
    if rng.random() < 0.6:
        ip = ".".join(str(rng.randint(a, 255)) for a in (1, 0, 0, 0))
        return (f'{ip} - - [{t}] "GET {rng.choice(PATHS)}{rng.randint(0, 99999)} HTTP/1.1" '
                f'{rng.choice([200, 200, 200, 304, 404, 500])} {rng.randint(100, 99999)} '
                f'"{rng.choice(AGENTS)}" rt={rng.random():.4f}\n')
    return (f"{t} {rng.choice(LEVELS)} worker-{rng.randint(0, 31)} "
            f"request_id={rng.getrandbits(64):016x} handled job {rng.randint(0, 10**6)} "
            f"in {rng.randint(1, 5000)}ms queue={rng.randint(0, 100)}\n")


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(7)
    for f in range(24):
        t = 1700000000 + f * 86400
        size = 0
        with open(os.path.join(out_dir, f"app-{f:02d}.log"), "w") as out:
            buf = []
            while size < 60_000_000:
                t += rng.randint(0, 3)
                s = line(rng, t)
                buf.append(s)
                size += len(s)
                if len(buf) > 10000:
                    out.write("".join(buf))
                    buf = []
            out.write("".join(buf))


if __name__ == "__main__":
    main()
