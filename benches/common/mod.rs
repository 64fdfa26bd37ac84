//! Helpers shared by the bench targets (`mod common;` in each): a seeded generator, the
//! synthetic mixed-content data of the stage benchmarks, synthetic index objects and the
//! process's peak RSS. Each target uses a subset.
#![allow(dead_code)]

use std::ops::Range;

use backup_to_s3::format::index::{IndexObject, IndexPack};
use backup_to_s3::format::pack::PackEntry;
use backup_to_s3::id::{BlobKind, Id};

/// xorshift64*: fast, seeded, deterministic everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `len` bytes of mixed content from `seed`, in six equal segments: random (incompressible),
/// text from a 4,000-word vocabulary, zeros, binary-like records, random, text. At zstd level 3
/// the mix compresses ~1.96×.
pub fn mixed(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let words: Vec<Vec<u8>> = (0..4000)
        .map(|_| {
            let n = 2 + (rng.next() % 9) as usize;
            (0..n).map(|_| b'a' + (rng.next() % 26) as u8).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(len);
    let seg = len / 6;
    for part in 0..6 {
        let end = (part + 1) * seg;
        match part {
            0 | 3 => {
                while out.len() < end {
                    out.extend_from_slice(&rng.next().to_le_bytes());
                }
            }
            1 | 4 => {
                while out.len() < end {
                    out.extend_from_slice(&words[(rng.next() % 4000) as usize]);
                    out.push(if rng.next().is_multiple_of(12) {
                        b'\n'
                    } else {
                        b' '
                    });
                }
            }
            2 => out.resize(end, 0),
            _ => {
                // binary-like: short records with small integers and repeated opcodes
                while out.len() < end {
                    let r = rng.next();
                    out.extend_from_slice(&[0x48, 0x8b, (r & 0x3f) as u8, 0, 0, 0]);
                    out.extend_from_slice(&((r >> 8) as u32 % 4096).to_le_bytes());
                }
            }
        }
        out.truncate(end);
    }
    out.resize(len, 0);
    out
}

/// One index object listing the blobs `ids` (1,000 per pack, 4 KiB each), with blob ids and
/// pack ids from the given functions of the blob's and the pack's first blob's number.
pub fn synthetic_object(
    ids: Range<u64>,
    blob_id: impl Fn(u64) -> Id,
    pack_id: impl Fn(u64) -> Id,
) -> IndexObject {
    let mut packs: Vec<IndexPack> = Vec::new();
    for (k, i) in ids.enumerate() {
        if k % 1000 == 0 {
            packs.push(IndexPack {
                pack: pack_id(i),
                entries: Vec::with_capacity(1000),
            });
        }
        if let Some(p) = packs.last_mut() {
            p.entries.push(PackEntry {
                kind: BlobKind::Data,
                id: blob_id(i),
                offset: (k % 1000) as u32 * 4096,
                length: 4096,
                raw_length: 8192,
            });
        }
    }
    IndexObject {
        supersedes: vec![],
        packs,
    }
}

/// A field of /proc/self/status (e.g. "VmHWM:", the peak RSS), value and unit.
pub fn vm(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}
