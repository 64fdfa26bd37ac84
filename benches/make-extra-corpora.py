#!/usr/bin/env python3
"""Two corpora the harness does not hold, used in session 14 as held-out checks:

  random  575 files of incompressible bytes (log-normal sizes, 1 kB to 80 MB; 1.5 GB), like a
          folder of photos, videos and archives
  zeros   one 2 GiB disk image of 4 MiB blocks, 70% all-zero and 30% text of hex words, like a
          thin-provisioned VM disk

Usage: benches/make-extra-corpora.py random|zeros DIR   (seeded: the same bytes every time)
"""
import os
import random
import sys

BLOCK = 4 << 20


def make_random(out_dir):
    rng = random.Random(7)
    total, i = 0, 0
    while total < 1_500_000_000:
        folder = os.path.join(out_dir, f"d{i // 50:03d}")
        os.makedirs(folder, exist_ok=True)
        size = max(1000, min(int(rng.lognormvariate(13.5, 1.6)), 80_000_000))
        with open(os.path.join(folder, f"f{i:05d}.bin"), "wb") as out:
            left = size
            while left:
                n = min(left, BLOCK)
                out.write(rng.randbytes(n))
                left -= n
        total += size
        i += 1


def make_zeros(out_dir):
    rng = random.Random(3)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "disk.img"), "wb") as out:
        for _ in range(512):
            if rng.random() < 0.7:
                out.write(bytes(BLOCK))
                continue
            words = [rng.randbytes(rng.randint(2, 8)).hex() for _ in range(2000)]
            text = " ".join(rng.choice(words) for _ in range(500_000)).encode()
            out.write(text[:BLOCK].ljust(BLOCK, b"x"))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("random", "zeros"):
        sys.exit(__doc__)
    {"random": make_random, "zeros": make_zeros}[sys.argv[1]](sys.argv[2])
