#!/usr/bin/env bash
# make-corpus.sh - build the benchmark corpora for peer/our backup-tool benchmarks.
#
# Usage: make-corpus.sh [usr|vmimage|small|all]   (default: all)
# Env:   BENCH_DATA (default /tmp/bench-data)  -- where datasets are written
#
# Datasets produced (deterministic on a given machine; "usr" depends on the
# machine's /usr contents, the rest is seeded pseudo-random + fixed inputs):
#   $BENCH_DATA/usr/                 copy of /usr minus lib/google-cloud-sdk and lib/jvm (cp -a)
#   $BENCH_DATA/vmimage/vm.img       2 GiB mixed-content "disk image"
#   $BENCH_DATA/vmimage-modified/vm.img
#                                    same image, ~1% bytes overwritten in 4 KiB
#                                    blocks (clustered hot spots) + 8 inserts that
#                                    shift data (1 B .. 1 MiB)
#   $BENCH_DATA/small-files/         200k files of 100 B..8 KiB in a deep random tree
# A "<name>-modified" sibling dir is what peers.sh uses as the "modified" state.
#
# Copied from shared/bench/make-corpus.sh (so the repository's harness runs stand-alone) with one
# addition: SIZE=small (default full) builds scaled-down corpora with the same structure:
#   usr: the first 500 MB of /usr in sorted order (same exclusions), vmimage: 512 MiB with the same
#   segment mix, modified with 32 hot spots (still ~1% of bytes) + the same 8 inserts,
#   small-files: 50k files in 3,250 folders.
set -euo pipefail
SIZE=${SIZE:-full}
D=${BENCH_DATA:-/tmp/bench-data}
WHAT=${1:-all}
mkdir -p "$D"
case "$SIZE" in
  full)  VM_MIB=2048; HOTSPOTS=128; NFILES=200000; NDIRS=13000; USR_BYTES=0 ;;
  small) VM_MIB=512;  HOTSPOTS=32;  NFILES=50000;  NDIRS=3250;  USR_BYTES=500000000 ;;
  *) echo "SIZE must be small or full" >&2; exit 2 ;;
esac

# Seeded pseudo-random byte stream: AES-256-CTR keystream of zeros.
prng() { # prng SEED NBYTES
  openssl enc -aes-256-ctr -nosalt -pbkdf2 -pass "pass:$1" </dev/zero 2>/dev/null | head -c "$2" || true
}
zeros() { head -c "$1" /dev/zero; }
# Deterministic tar stream (sorted, fixed mtime/owner) truncated to N bytes.
tarcut() { # tarcut NBYTES DIR...
  local n=$1; shift
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C / -cf - "$@" 2>/dev/null | head -c "$n" || true
}

make_usr() {
  [ -d "$D/usr" ] && { echo "usr exists, skipping" >&2; return; }
  if [ "$USR_BYTES" -gt 0 ]; then make_usr_prefix; return; fi
  mkdir -p "$D/usr.tmp"
  # /usr is ~4.9 GB here; dropping google-cloud-sdk (1.9 GB) and jvm (0.56 GB) leaves ~2.5 GB / ~60k files.
  for e in /usr/*; do
    b=$(basename "$e")
    if [ "$b" = lib ]; then
      mkdir -p "$D/usr.tmp/lib"
      for l in /usr/lib/* /usr/lib/.[!.]*; do
        [ -e "$l" ] || [ -L "$l" ] || continue
        case "$(basename "$l")" in google-cloud-sdk|jvm) continue ;; esac
        cp -a "$l" "$D/usr.tmp/lib/"
      done
    else
      cp -a "$e" "$D/usr.tmp/"
    fi
  done
  mv "$D/usr.tmp" "$D/usr"
}

# The first USR_BYTES of /usr (files and symlinks in sorted path order), structure preserved.
make_usr_prefix() {
  rm -rf "$D/usr.tmp"; mkdir -p "$D/usr.tmp"
  python3 - "$USR_BYTES" > "$D/usr.list" <<'EOF'
import os, sys
budget = int(sys.argv[1]); total = 0; out = []
for dp, dn, fn in os.walk('/usr'):
    dn[:] = sorted(d for d in dn if not (dp == '/usr/lib' and d in ('google-cloud-sdk', 'jvm')))
    for f in sorted(fn):
        p = os.path.join(dp, f)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        total += 0 if os.path.islink(p) else st.st_size
        out.append(p[1:])
    if total >= budget:
        break
sys.stdout.write('\0'.join(out))
EOF
  tar -C / --null -T "$D/usr.list" -cf - 2>/dev/null | tar -C "$D/usr.tmp" -xpf -
  rm -f "$D/usr.list"
  mv "$D/usr.tmp/usr" "$D/usr"; rmdir "$D/usr.tmp"
}

make_vmimage() {
  local img="$D/vmimage/vm.img" mod="$D/vmimage-modified/vm.img"
  mkdir -p "$D/vmimage" "$D/vmimage-modified"
  if [ ! -f "$img" ]; then
    M=$((1024*1024))
    {
      if [ "$VM_MIB" -eq 2048 ]; then
        zeros $((32*M))                                               # "boot area"
        tarcut $((1024*M)) usr/lib/x86_64-linux-gnu usr/lib/llvm-14 usr/lib/gcc   # binaries
        prng vm-seed-1 $((320*M))                                     # incompressible (media/encrypted)
        zeros $((256*M))                                              # free space
        tarcut $((288*M)) usr/share/doc usr/share/man usr/share/locale usr/share/perl usr/share/vim usr/include  # text
        prng vm-seed-2 $((128*M))                                     # incompressible
      else # the same mix scaled to VM_MIB (a multiple of 64)
        u=$((VM_MIB/64))
        zeros $((u*M))
        tarcut $((u*32*M)) usr/lib/x86_64-linux-gnu usr/lib/llvm-14 usr/lib/gcc
        prng vm-seed-1 $((u*10*M))
        zeros $((u*8*M))
        tarcut $((u*9*M)) usr/share/doc usr/share/man usr/share/locale usr/share/perl usr/share/vim usr/include
        prng vm-seed-2 $((u*4*M))
      fi
    } > "$img.tmp"
    sz=$(stat -c %s "$img.tmp")
    [ "$sz" -eq $((VM_MIB*M)) ] || { echo "vm.img has wrong size $sz (need more input data?)" >&2; exit 1; }
    touch -d @1700000000 "$img.tmp"; mv "$img.tmp" "$img"
  fi
  if [ ! -f "$mod" ]; then
    python3 - "$img" "$mod.tmp" "$HOTSPOTS" <<'EOF'
import os, random, sys
src, dst, hotspots = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(20240601)
size = os.path.getsize(src)
# 8 insertions at random offsets (shift all following data)
ins_sizes = [1, 7, 100, 1000, 4096, 10000, 65536, 1 << 20]
ins = sorted((rng.randrange(0, size), rng.randbytes(s)) for s in ins_sizes)
with open(src, 'rb') as f, open(dst, 'wb') as g:
    pos = 0
    for off, data in ins + [(size, b'')]:
        while pos < off:
            buf = f.read(min(1 << 22, off - pos)); g.write(buf); pos += len(buf)
        g.write(data)
newsize = os.path.getsize(dst)
# ~1% of bytes overwritten: 128 hot spots x 40 random 4 KiB blocks within a 1 MiB window
nblk = 0
with open(dst, 'r+b') as g:
    for _ in range(hotspots):
        base = rng.randrange(0, newsize - (1 << 20)) & ~4095
        for b in rng.sample(range(256), 40):
            g.seek(base + b * 4096); g.write(rng.randbytes(4096)); nblk += 1
print(f"modified: {len(ins_sizes)} inserts ({sum(ins_sizes)} B), {nblk} x 4KiB blocks overwritten "
      f"({nblk*4096/size*100:.2f}% of bytes), new size {newsize}", file=sys.stderr)
EOF
    touch -d @1700086400 "$mod.tmp"; mv "$mod.tmp" "$mod"
  fi
}

make_small() {
  [ -d "$D/small-files" ] && { echo "small-files exists, skipping" >&2; return; }
  python3 - "$D/small-files.tmp" "$NFILES" "$NDIRS" <<'EOF'
import math, os, random, sys
root = sys.argv[1]
rng = random.Random(1234)
NFILES, NDIRS = int(sys.argv[2]), int(sys.argv[3])
# random recursive tree -> average depth ~ln(NDIRS) ~ 9.5, max ~25
dirs = [""]
depth = [0]
for i in range(1, NDIRS):
    p = rng.randrange(len(dirs))
    dirs.append(f"{dirs[p]}/d{i:05d}" if dirs[p] else f"d{i:05d}")
    depth.append(depth[p] + 1)
for d in dirs:
    os.makedirs(os.path.join(root, d), exist_ok=True)
syll = ["ka", "lo", "mi", "ne", "ru", "ta", "ve", "zo", "qu", "ix", "sh", "an", "el", "or", "um", "th"]
vocab = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(5000)]
vocab += ["{", "}", "(", ")", ";", "=", "return", "if", "else", "for", "\n", "\n    ", "0", "1", "null"]
written = []
total = 0
for i in range(NFILES):
    n = int(math.exp(rng.uniform(math.log(100), math.log(8192))))
    kind = rng.random()
    if kind < 0.15 and written:          # 15% exact duplicates of an earlier file
        data = rng.choice(written)
    elif kind < 0.45:                    # 30% incompressible
        data = rng.randbytes(n)
    else:                                # 55% text/code-like
        words, ln = [], 0
        while ln < n:
            w = rng.choice(vocab); words.append(w); ln += len(w) + 1
        data = " ".join(words).encode()[:n]
    if len(written) < 2000: written.append(data)
    elif rng.random() < 0.01: written[rng.randrange(2000)] = data
    d = dirs[rng.randrange(len(dirs))]
    ext = rng.choice([".c", ".h", ".txt", ".json", ".bin", ".dat", ".md", ".py", ""])
    p = os.path.join(root, d, f"f{i:06d}{ext}")
    with open(p, "wb") as f: f.write(data)
    os.utime(p, (1700000000 + i, 1700000000 + i))
    total += len(data)
print(f"small-files: {NFILES} files, {NDIRS} dirs, max depth {max(depth)}, {total} bytes", file=sys.stderr)
EOF
  mv "$D/small-files.tmp" "$D/small-files"
}

case "$WHAT" in
  usr) make_usr ;;
  vmimage) make_vmimage ;;
  small) make_small ;;
  all) make_usr; make_vmimage; make_small ;;
  *) echo "usage: $0 [usr|vmimage|small|all]" >&2; exit 2 ;;
esac
# summary
for ds in usr vmimage vmimage-modified small-files; do
  [ -d "$D/$ds" ] || continue
  printf '%s: %s bytes (apparent), %s files, %s dirs\n' "$ds" \
    "$(du -sb "$D/$ds" | cut -f1)" "$(find "$D/$ds" -type f | wc -l)" "$(find "$D/$ds" -type d | wc -l)" >&2
done
