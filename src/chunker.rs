//! Content-defined chunking (format-spec §3.4): fastcdc v2020 with the gear table seeded from the
//! repository key, so chunk boundaries (and sizes) reveal nothing about the contents to others.

use std::io::Read;

use fastcdc::v2020::{Normalization, StreamCDC};

use crate::format::config::ChunkerParams;

#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
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
        Chunker { params, seed }
    }

    pub fn params(&self) -> &ChunkerParams {
        &self.params
    }

    /// Split a stream into chunks; yields each chunk's bytes in order.
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
