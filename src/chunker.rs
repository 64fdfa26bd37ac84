//! Content-defined chunking (format-spec §3.4): fastcdc v2020 with the gear table seeded from the
//! repository key, so chunk boundaries (and sizes) reveal nothing about the contents to others.

use std::borrow::Cow;
use std::io::{ErrorKind, Read};

use fastcdc::v2020::{cut_gear, get_gear_with_seed, select_masks, Normalization, StreamCDC};

use crate::format::config::ChunkerParams;

/// Smallest read buffer of `for_each_chunk` (it is at least two maximum-size chunks).
const READ_BUFFER_MIN: usize = 8 << 20;

#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
    /// The seeded gear tables and masks, computed once instead of once per file.
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
    mask_s: u64,
    mask_l: u64,
}

/// The read buffer of `Chunker::for_each_chunk`; keep one per thread and reuse it for every file.
#[derive(Default)]
pub struct ChunkBuffer {
    buf: Vec<u8>,
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

    /// Length of the first chunk of `window` (which holds at least a maximum-size chunk, or the
    /// rest of the stream): fastcdc v2020's cut, exactly as `StreamCDC` computes it.
    fn cut(&self, window: &[u8]) -> usize {
        let p = &self.params;
        let (_, n) = cut_gear(
            window,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        if n == 0 {
            window.len()
        } else {
            n
        }
    }

    /// Split a stream into chunks and call `each` with every chunk in order; returns the bytes
    /// read. The cut points are those of `chunks`, but the stream is read in large blocks into
    /// `buf` and each chunk is lent from there: nothing is copied unless the caller keeps a
    /// chunk, and the buffer is shifted once per block rather than once per chunk.
    pub fn for_each_chunk<R, E>(
        &self,
        mut reader: R,
        buf: &mut ChunkBuffer,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        R: Read,
        E: From<std::io::Error>,
    {
        let max = self.params.max_size as usize;
        // Two maximum-size chunks: every refill reads at least one, and moves less than one to
        // the front (a memmove, cheap next to cutting and hashing). Each reader thread of a
        // backup keeps its buffer, so its size counts once per thread in the peak memory.
        let cap = (2 * max).max(READ_BUFFER_MIN);
        if buf.buf.len() < cap {
            // Zeroed by the allocator: pages are only touched (resident) once data is read into
            // them, so a buffer that only ever holds small files stays small.
            buf.buf = vec![0; cap];
        }
        let b = &mut buf.buf[..];
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            if !eof && end - start < max {
                b.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while end < b.len() {
                    match reader.read(&mut b[end..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => end += n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if start == end {
                return Ok(total);
            }
            let n = self.cut(&b[start..end]);
            each(&b[start..start + n])?;
            total += n as u64;
            start += n;
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

    #[test]
    fn for_each_chunk_cuts_like_stream_cdc() -> std::io::Result<()> {
        let ch = Chunker::new(ChunkerParams::default(), 0x5eed_1234_abcd_0001);
        let small = Chunker::new(
            ChunkerParams {
                min_size: 4096,
                avg_size: 16384,
                max_size: 65536,
                normalization: 2,
            },
            7,
        );
        let mut buf = ChunkBuffer::default();
        for c in [&ch, &small] {
            for (n, seed) in [(0, 1), (1, 2), (300_000, 3), (23_456_789, 4), (40 << 20, 5)] {
                let d = data(n, seed);
                let want: Vec<Vec<u8>> = c.chunks(&d[..]).collect::<std::io::Result<_>>()?;
                for dribble in [false, true] {
                    let mut got = Vec::new();
                    let total = if dribble {
                        c.for_each_chunk(Dribble(&d, 0), &mut buf, |x| {
                            got.push(x.to_vec());
                            Ok::<_, std::io::Error>(())
                        })?
                    } else {
                        c.for_each_chunk(&d[..], &mut buf, |x| {
                            got.push(x.to_vec());
                            Ok::<_, std::io::Error>(())
                        })?
                    };
                    assert_eq!(total, n as u64);
                    assert!(got == want, "cut points differ (n={n}, dribble={dribble})");
                }
            }
        }
        Ok(())
    }
}
