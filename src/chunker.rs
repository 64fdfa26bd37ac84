//! Content-defined chunking (format-spec §3.4): fastcdc v2020 with the gear table seeded from the
//! repository key, so chunk boundaries (and sizes) reveal nothing about the contents to others.

use std::io::{ErrorKind, Read};

use fastcdc::v2020::{get_gear_with_seed, select_masks, Normalization, StreamCDC};

use crate::format::config::ChunkerParams;

/// Bytes asked of the reader at a time once a chunk holds its minimum size. A read can run past
/// the cut, and what it read past the cut (at most this much) moves to the start of the next
/// chunk: a small block keeps that copy small, a large one saves read calls.
const READ_BLOCK: usize = 256 << 10;

/// A gear table: one value per byte value.
type Gear = [u64; 256];

#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
    /// The seeded gear tables and masks, computed once instead of once per file.
    gear: Gear,
    gear_ls: Gear,
    mask_s: u64,
    mask_l: u64,
}

/// The read buffer of `Chunker::for_each_chunk`; keep one per thread and reuse it for every file.
/// It holds the chunk being cut, from its first byte, plus at most one read past its end.
#[derive(Default)]
pub struct ChunkBuffer {
    /// `buf.len()` is how much of it was ever zeroed: bytes are zeroed once, just before the
    /// first read into them, not per chunk.
    buf: Vec<u8>,
}

/// A running digest of each chunk's bytes, fed by `Chunker::for_each_chunk` while it scans for
/// the chunk's end, so hashing a chunk overlaps with finding it. `()` computes nothing.
pub trait ChunkDigest: Send {
    type Output;
    /// Whether feeding it is worth handing to a second thread.
    const OVERLAP: bool = true;
    fn update(&mut self, bytes: &[u8]);
    /// The digest of everything fed since the last `finish`; starts over.
    fn finish(&mut self) -> Self::Output;
}

impl ChunkDigest for () {
    type Output = ();
    const OVERLAP: bool = false;
    fn update(&mut self, _: &[u8]) {}
    fn finish(&mut self) {}
}

/// Where the gear-hash scan of the current chunk stands, so that it resumes after a read
/// instead of starting over.
struct Scan {
    /// Next pair of bytes to test: bytes `2 * pair` and `2 * pair + 1` of the chunk.
    pair: usize,
    hash: u64,
}

/// Pairs each of the two hash chains of `Scan::run_two` covers per round.
const SPAN: usize = 4096;

/// After 32 pairs the hash no longer depends on anything before them: each pair shifts it left
/// by two bits.
const MEMORY: usize = 32;

impl Scan {
    /// Test pairs up to `end` (exclusive) as `cut_gear` does: `mask` after a pair's second
    /// byte, `mask << 1` after its first. Returns the cut, if one is found.
    ///
    /// The hash is one long dependency chain, so a single scan leaves most of the core idle.
    /// Since the hash at a pair depends only on the 32 pairs before it, the scan runs two
    /// chains at once, over two adjacent stretches, the second started 32 pairs early: the
    /// same hashes, more of them per cycle (the scan went from 1.84 to 2.21 GiB/s).
    #[inline(always)]
    fn run(
        &mut self,
        src: &[u8],
        end: usize,
        mask: u64,
        gear: &Gear,
        gear_ls: &Gear,
    ) -> Option<usize> {
        let t = Tables::new(mask, gear, gear_ls);
        while end.saturating_sub(self.pair) >= 2 * SPAN {
            let round_end = self.pair + 2 * SPAN;
            match self.run_two(src, &t) {
                Two::Cut(cut) => return Some(cut),
                Two::Passed => {}
                Two::Zeros => {
                    if let Some(cut) = self.run_one(src, round_end, &t) {
                        return Some(cut);
                    }
                }
            }
        }
        self.run_one(src, end, &t)
    }

    /// One round over pairs `pair .. pair + 2 * SPAN`: chain `a` over the first half, chain
    /// `b` over the second. A cut of `a` comes first; one of `b` only counts once `a` has none.
    #[inline(always)]
    fn run_two(&mut self, src: &[u8], t: &Tables) -> Two {
        let (a0, b0) = (self.pair, self.pair + SPAN);
        let mut hb = t.hash_before(src, b0);
        let (pairs_a, _) = src[2 * a0..2 * b0].as_chunks::<2>();
        let (pairs_b, _) = src[2 * b0..2 * (b0 + SPAN)].as_chunks::<2>();
        let mut ha = self.hash;
        let mut i = 0;
        for (block_a, block_b) in pairs_a
            .chunks_exact(MEMORY)
            .zip(pairs_b.chunks_exact(MEMORY))
        {
            for (&[a1, a2], &[b1, b2]) in block_a.iter().zip(block_b) {
                ha = (ha << 2).wrapping_add(t.gear_ls[a1 as usize]);
                hb = (hb << 2).wrapping_add(t.gear_ls[b1 as usize]);
                if ha & t.mask_ls == 0 {
                    return Two::Cut(2 * (a0 + i));
                }
                ha = ha.wrapping_add(t.gear[a2 as usize]);
                if ha & t.mask == 0 {
                    return Two::Cut(2 * (a0 + i) + 1);
                }
                let b_cut = if hb & t.mask_ls == 0 {
                    Some(2 * (b0 + i))
                } else {
                    hb = hb.wrapping_add(t.gear[b2 as usize]);
                    (hb & t.mask == 0).then_some(2 * (b0 + i) + 1)
                };
                i += 1;
                if let Some(b_cut) = b_cut {
                    // The rest of `a`'s stretch may still hold an earlier cut.
                    (self.pair, self.hash) = (a0 + i, ha);
                    return Two::Cut(self.run_one(src, b0, t).unwrap_or(b_cut));
                }
            }
            if t.skip && ha == t.zero {
                (self.pair, self.hash) = (a0 + i, ha);
                return Two::Zeros;
            }
        }
        (self.pair, self.hash) = (b0 + SPAN, hb);
        Two::Passed
    }

    /// The plain scan: one chain, jumping over zeros.
    #[inline(always)]
    fn run_one(&mut self, src: &[u8], end: usize, t: &Tables) -> Option<usize> {
        // Locals, so the hot loop keeps them in registers.
        let (mut i, mut hash) = (self.pair, self.hash);
        let mut cut = None;
        'scan: while i < end {
            let stop = end.min(i + MEMORY);
            // Whole pairs and 256-entry tables: the hot loop indexes without bounds checks.
            let (pairs, _) = src[2 * i..2 * stop].as_chunks::<2>();
            for &[first, second] in pairs {
                hash = (hash << 2).wrapping_add(t.gear_ls[first as usize]);
                if hash & t.mask_ls == 0 {
                    cut = Some(2 * i);
                    break 'scan;
                }
                hash = hash.wrapping_add(t.gear[second as usize]);
                if hash & t.mask == 0 {
                    cut = Some(2 * i + 1);
                    break 'scan;
                }
                i += 1;
            }
            if t.skip && hash == t.zero {
                i += zero_pairs(&src[2 * i..2 * end]);
            }
        }
        (self.pair, self.hash) = (i, hash);
        cut
    }
}

/// How a round of two chains ended.
enum Two {
    Cut(usize),
    /// No cut in the round; the scan stands at its end.
    Passed,
    /// Chain `a` reached zeros, where the single scan jumps; the scan stands there.
    Zeros,
}

/// What a scan tests with, for one mask.
struct Tables<'a> {
    gear: &'a Gear,
    gear_ls: &'a Gear,
    mask: u64,
    mask_ls: u64,
    /// After 32 pairs of zero bytes the hash is `zero` whatever came before, and another
    /// pair of zeros leaves it there. Unless one of the two tests matches it, no cut can
    /// fall among zeros once the hash is `zero`, so the scan jumps over them (`skip`): disk
    /// images hold hundreds of megabytes of zeros. The cuts stay those of the byte-wise scan.
    zero: u64,
    skip: bool,
}

impl<'a> Tables<'a> {
    /// The hash after the pairs before `pair`, from the 32 pairs it depends on (`pair` ≥ 32).
    #[inline(always)]
    fn hash_before(&self, src: &[u8], pair: usize) -> u64 {
        let (warm, _) = src[2 * (pair - MEMORY)..2 * pair].as_chunks::<2>();
        warm.iter().fold(0u64, |h, &[first, second]| {
            (h << 2)
                .wrapping_add(self.gear_ls[first as usize])
                .wrapping_add(self.gear[second as usize])
        })
    }

    #[inline(always)]
    fn new(mask: u64, gear: &'a Gear, gear_ls: &'a Gear) -> Self {
        let mask_ls = mask << 1;
        let zero = 0u64.wrapping_sub(gear[0]);
        let skip = (zero << 2).wrapping_add(gear_ls[0]) & mask_ls != 0 && zero & mask != 0;
        Tables {
            gear,
            gear_ls,
            mask,
            mask_ls,
            zero,
            skip,
        }
    }
}

/// How many pairs of zero bytes `bytes` starts with.
fn zero_pairs(bytes: &[u8]) -> usize {
    let (blocks, _) = bytes.as_chunks::<32>();
    let whole = blocks.iter().take_while(|b| **b == [0; 32]).count() * 32;
    let more = bytes[whole..].iter().take_while(|&&b| b == 0).count();
    (whole + more) / 2
}

fn level(n: u8) -> Normalization {
    match n {
        0 => Normalization::Level0,
        1 => Normalization::Level1,
        2 => Normalization::Level2,
        _ => Normalization::Level3,
    }
}

impl Chunker {
    /// `params` must have passed `ChunkerParams::validate`.
    pub fn new(params: ChunkerParams, seed: u64) -> Self {
        let (gear, gear_ls) = get_gear_with_seed(seed);
        // fastcdc's tables have one entry per byte value.
        let table = |t: &[u64]| std::array::from_fn(|b| t.get(b).copied().unwrap_or_default());
        let (gear, gear_ls) = (table(&gear), table(&gear_ls));
        let (mask_s, mask_l) = select_masks(params.avg_size as usize, level(params.normalization));
        Chunker {
            params,
            seed,
            gear,
            gear_ls,
            mask_s,
            mask_l,
        }
    }

    fn scan_start(&self) -> Scan {
        Scan {
            pair: self.params.min_size as usize / 2,
            hash: 0,
        }
    }

    /// Continue fastcdc v2020's cut (`cut_gear`) over the bytes of a chunk read so far; `eof`
    /// says nothing follows them. Returns the chunk's length once it is decided. The scan tests
    /// the same pairs with the same masks as `cut_gear` given the whole window, so it finds the
    /// same cut points however the stream arrives (the test below checks it against the crate).
    fn scan(&self, data: &[u8], eof: bool, s: &mut Scan) -> Option<usize> {
        let (min, avg, max) = (
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
        );
        if data.len() <= min {
            return eof.then_some(data.len());
        }
        let window = data.len().min(max);
        let src = &data[..window];
        let pairs = window / 2;
        // Below the average size the strict mask, above it the relaxed one.
        let strict = (avg / 2).min(pairs);
        s.run(src, strict, self.mask_s, &self.gear, &self.gear_ls)
            .or_else(|| s.run(src, pairs, self.mask_l, &self.gear, &self.gear_ls))
            .or((eof || data.len() >= max).then_some(window))
    }

    /// Split a stream into chunks and call `each` with every chunk in order and its digest;
    /// returns the bytes read. The cut points are those of `chunks`, but each chunk is lent from
    /// `buf`, which holds one maximum-size chunk and one read block: nothing is copied unless the
    /// caller keeps a chunk, except what a read brought past a cut, moved to the front (at most
    /// one block per chunk). The scan resumes after each read, so the buffer needs no lookahead
    /// of a whole maximum-size chunk.
    ///
    /// Bytes before the scan position belong to the current chunk whatever the cut, so on a
    /// rayon worker `digest` hashes them on a second thread (`rayon::join`) while the scan goes
    /// on; only the stretch between the last scan position and the cut is hashed after it.
    pub fn for_each_chunk<R, E, D>(
        &self,
        mut reader: R,
        buf: &mut ChunkBuffer,
        digest: &mut D,
        mut each: impl FnMut(&[u8], D::Output) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        R: Read,
        E: From<std::io::Error>,
        D: ChunkDigest,
    {
        let (min, max) = (self.params.min_size as usize, self.params.max_size as usize);
        let cap = max + READ_BLOCK;
        let b = &mut buf.buf;
        if b.capacity() < cap {
            *b = Vec::with_capacity(cap);
        }
        // Outside a rayon pool a join would hop to the global pool and back for every block.
        let overlap = D::OVERLAP && rayon::current_thread_index().is_some();
        // Bytes `..end` of `b` are read: the current chunk and what follows it; `..hashed` of
        // them went into `digest`.
        let (mut end, mut eof, mut total, mut hashed) = (0usize, false, 0u64, 0usize);
        let mut scan = self.scan_start();
        loop {
            // The cut comes at or after the scan position once more than `min` bytes are read.
            let known = if end > min {
                (2 * scan.pair).min(end)
            } else {
                0
            };
            let found = if overlap && known > hashed {
                let (b, scan) = (&b[..end], &mut scan);
                let (found, ()) = rayon::join(
                    || self.scan(b, eof, scan),
                    || digest.update(&b[hashed..known]),
                );
                hashed = known;
                found
            } else {
                self.scan(&b[..end], eof, &mut scan)
            };
            let cut = match found {
                Some(n) => n,
                None => {
                    // Read at least up to the minimum size at once: no cut can come before it.
                    let want = READ_BLOCK.max(min.saturating_sub(end)).min(cap - end);
                    if b.len() < end + want {
                        b.resize(end + want, 0);
                    }
                    match reader.read(&mut b[end..end + want]) {
                        Ok(0) => eof = true,
                        Ok(n) => end += n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                    continue;
                }
            };
            if cut == 0 {
                return Ok(total);
            }
            digest.update(&b[hashed..cut]);
            each(&b[..cut], digest.finish())?;
            total += cut as u64;
            b.copy_within(cut..end, 0);
            end -= cut;
            hashed = 0;
            scan = self.scan_start();
        }
    }

    pub fn params(&self) -> &ChunkerParams {
        &self.params
    }

    /// Split a stream into chunks; yields each chunk's bytes in order (one allocation and buffer
    /// shift per chunk: backup uses `for_each_chunk`).
    pub fn chunks<R: Read>(&self, reader: R) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
        let p = &self.params;
        StreamCDC::with_level_and_seed(
            reader,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            level(p.normalization),
            self.seed,
        )
        .map(|r| {
            r.map(|c| c.data).map_err(|e| match e {
                fastcdc::v2020::Error::IoError(io) => io,
                other => std::io::Error::other(format!("chunker: {other:?}")),
            })
        })
    }

    /// Cut points of an in-memory buffer (chunk lengths), for tests and benchmarks.
    pub fn cut_lengths(&self, data: &[u8]) -> Vec<usize> {
        let p = &self.params;
        fastcdc::v2020::FastCDC::with_level_and_seed(
            data,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            level(p.normalization),
            self.seed,
        )
        .map(|c| c.length)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // stretches of zeros and of low-entropy bytes, to hit min and max cuts
                match (i >> 20) % 4 {
                    0 => 0,
                    1 => (x % 3) as u8,
                    _ => x as u8,
                }
            })
            .collect()
    }

    /// A reader returning short reads, to exercise refills at odd offsets.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.1 = self.1 % 7919 + 4099;
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn collect(
        c: &Chunker,
        r: impl Read,
        buf: &mut ChunkBuffer,
    ) -> std::io::Result<(u64, Vec<Vec<u8>>)> {
        let mut got = Vec::new();
        let total = c.for_each_chunk(r, buf, &mut (), |x, ()| {
            got.push(x.to_vec());
            Ok::<_, std::io::Error>(())
        })?;
        Ok((total, got))
    }

    /// Small sizes, so that test data holds many cuts.
    fn small_chunker() -> Chunker {
        Chunker::new(
            ChunkerParams {
                min_size: 4096,
                avg_size: 16384,
                max_size: 65536,
                normalization: 2,
            },
            7,
        )
    }

    /// Runs of zeros of many lengths between random bytes: the scan's jump over zeros must cut
    /// exactly where `StreamCDC` does, with seeds whose zero hash matches a mask (no jump) and
    /// seeds whose does not.
    #[test]
    fn zero_runs_cut_like_stream_cdc() -> std::io::Result<()> {
        let noise = data(3 << 20, 11); // random bytes from 2 MiB on
        let mut d = Vec::new();
        let zero_runs = [1, 2, 63, 64, 65, 66, 127, 1000, 5001, 70_000, 300_001];
        for (k, zeros) in zero_runs.into_iter().enumerate() {
            let from = (2 << 20) + k * 4099;
            d.extend_from_slice(&noise[from..from + 997 * k + 13]);
            d.resize(d.len() + zeros, 0);
        }
        let (mut jumping, mut not_jumping) = (0, 0);
        let mut buf = ChunkBuffer::default();
        for k in 0..48u64 {
            let seed = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let c = Chunker::new(
                ChunkerParams {
                    min_size: 64,
                    avg_size: 256,
                    max_size: 8192,
                    normalization: 3,
                },
                seed,
            );
            let zero = 0u64.wrapping_sub(c.gear[0]);
            let jumps = [c.mask_s, c.mask_l]
                .iter()
                .all(|&m| zero & m != 0 && (zero << 1) & (m << 1) != 0);
            if jumps {
                jumping += 1;
            } else {
                not_jumping += 1;
            }
            let want: Vec<Vec<u8>> = c.chunks(&d[..]).collect::<std::io::Result<_>>()?;
            assert!(collect(&c, &d[..], &mut buf)?.1 == want, "seed {seed}");
            assert!(
                collect(&c, Dribble(&d, 0), &mut buf)?.1 == want,
                "seed {seed}, dribbled"
            );
        }
        assert!(
            jumping > 0 && not_jumping > 0,
            "{jumping} seeds jump, {not_jumping} do not"
        );
        Ok(())
    }

    /// The two-chain scan must find the cut the single chain finds, wherever the cuts of the
    /// two chains fall in a round (a cut of the second chain with or without a later one in the
    /// first), and across zeros; dense masks put several cuts in most rounds.
    #[test]
    fn two_chains_cut_like_one() {
        let noise = data(4 << 20, 5);
        let mut d = noise[2 << 20..(2 << 20) + 200_000].to_vec();
        d.extend(std::iter::repeat_n(0, 50_000));
        d.extend_from_slice(&noise[(3 << 20)..(3 << 20) + 100_000]);
        let c = small_chunker();
        let end = d.len() / 2;
        // Rounds start every 2 * SPAN pairs from `start`; the second half of a whole round is
        // the second chain's.
        let by_second_chain = |start: usize, cut: usize| {
            let p = cut / 2 - start;
            p / SPAN % 2 == 1 && start + (p / (2 * SPAN) + 1) * 2 * SPAN <= end
        };
        let mut seen_b = 0;
        for bits in [10u32, 12, 14, 16, 18, 40] {
            let mask = (1u64 << bits) - 1;
            let mask = mask.rotate_left(bits * 7 % 64);
            let t = Tables::new(mask, &c.gear, &c.gear_ls);
            for start in (0..end - 3 * SPAN).step_by(3001) {
                let mut one = Scan {
                    pair: start,
                    hash: 0,
                };
                let want = one.run_one(&d, end, &t);
                let mut both = Scan {
                    pair: start,
                    hash: 0,
                };
                let got = both.run(&d, end, mask, &c.gear, &c.gear_ls);
                assert_eq!(got, want, "bits {bits}, start {start}");
                if want.is_none() {
                    assert_eq!((both.pair, both.hash), (one.pair, one.hash));
                }
                if want.is_some_and(|cut| by_second_chain(start, cut)) {
                    seen_b += 1;
                }
            }
        }
        assert!(seen_b > 0, "no cut fell to the second chain");
        // Where the second chain starts, its hash is the first chain's: a mask that never
        // matches lets the single chain run through.
        let t = Tables::new(u64::MAX, &c.gear, &c.gear_ls);
        for (start, at) in [(0, 32), (0, 33), (5, 1000), (999, 1031), (40_000, 100_000)] {
            let mut one = Scan {
                pair: start,
                hash: 0,
            };
            assert_eq!(one.run_one(&noise, at, &t), None);
            assert_eq!(t.hash_before(&noise, at), one.hash, "hash before pair {at}");
        }
    }

    #[test]
    fn for_each_chunk_cuts_like_stream_cdc() -> std::io::Result<()> {
        let ch = Chunker::new(ChunkerParams::default(), 0x5eed_1234_abcd_0001);
        let small = small_chunker();
        // fastcdc's smallest sizes: many cuts, in both mask regions and at the maximum.
        let tiny = Chunker::new(
            ChunkerParams {
                min_size: 64,
                avg_size: 256,
                max_size: 1024,
                normalization: 3,
            },
            9,
        );
        let mut buf = ChunkBuffer::default();
        for c in [&ch, &small, &tiny] {
            for (n, seed) in [(0, 1), (1, 2), (300_001, 3), (23_456_789, 4), (40 << 20, 5)] {
                let d = data(n, seed);
                let want: Vec<Vec<u8>> = c.chunks(&d[..]).collect::<std::io::Result<_>>()?;
                for dribble in [false, true] {
                    let (total, got) = if dribble {
                        collect(c, Dribble(&d, 0), &mut buf)?
                    } else {
                        collect(c, &d[..], &mut buf)?
                    };
                    assert_eq!(total, n as u64);
                    assert!(got == want, "cut points differ (n={n}, dribble={dribble})");
                }
            }
        }
        Ok(())
    }

    /// On a rayon worker the digest is fed on two threads while the scan runs; every chunk's
    /// digest must still be the hash of exactly that chunk, and the cuts must not move.
    #[test]
    fn overlapped_digest_is_each_chunks_id() -> std::io::Result<()> {
        let keys = crate::crypto::MasterKey::from_bytes([3u8; 32]).subkeys();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .map_err(std::io::Error::other)?;
        let small = small_chunker();
        let ch = Chunker::new(ChunkerParams::default(), keys.chunker_seed);
        let mut buf = ChunkBuffer::default();
        for c in [&ch, &small] {
            for (n, seed) in [(0, 1), (300_001, 3), (23_456_789, 4)] {
                let d = data(n, seed);
                let want: Vec<Vec<u8>> = c.chunks(&d[..]).collect::<std::io::Result<_>>()?;
                for dribble in [false, true] {
                    let mut got = Vec::new();
                    let mut hasher = keys.blob_hasher();
                    let total = pool.install(|| {
                        let each = |x: &[u8], id| {
                            got.push((x.to_vec(), id));
                            Ok::<_, std::io::Error>(())
                        };
                        if dribble {
                            c.for_each_chunk(Dribble(&d, 0), &mut buf, &mut hasher, each)
                        } else {
                            c.for_each_chunk(&d[..], &mut buf, &mut hasher, each)
                        }
                    })?;
                    assert_eq!(total, n as u64);
                    assert_eq!(got.len(), want.len(), "chunk count (n={n})");
                    for ((chunk, id), w) in got.iter().zip(&want) {
                        assert!(chunk == w, "cut points differ (n={n}, dribble={dribble})");
                        assert_eq!(*id, keys.blob_id(w), "digest of a chunk (n={n})");
                    }
                }
            }
        }
        Ok(())
    }
}
