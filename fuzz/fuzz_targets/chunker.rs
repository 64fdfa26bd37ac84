#![no_main]
//! The chunker with any parameters `ChunkerParams::validate` accepts: the streaming and
//! in-memory chunkers agree, chunks concatenate to the input and respect [min, max].

use backup_to_s3::chunker::Chunker;
use backup_to_s3::format::config::ChunkerParams;
use fuzz_common::mirror::ArbChunker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|a: ArbChunker| {
    let params = if a.use_raw {
        let (min_size, avg_size, max_size, normalization) = a.raw;
        ChunkerParams {
            min_size,
            avg_size,
            max_size,
            normalization,
        }
    } else {
        // Small sizes, so the fuzzer's short inputs span several chunks.
        let (x, y, z, n) = a.small;
        let min_size = 64 + 2 * u32::from(x % 512);
        let avg_size = min_size.max(256) + 2 * u32::from(y % 1024);
        let max_size = avg_size.max(1024) + 2 * u32::from(z % 2048);
        ChunkerParams {
            min_size,
            avg_size,
            max_size,
            normalization: n % 4,
        }
    };
    if params.validate().is_err() {
        return;
    }
    let (min, max) = (params.min_size as usize, params.max_size as usize);
    let chunker = Chunker::new(params, a.seed);
    let lengths = chunker.cut_lengths(&a.data);
    let streamed: Vec<Vec<u8>> = chunker
        .chunks(&a.data[..])
        .collect::<Result<_, _>>()
        .expect("reading a slice cannot fail");
    assert_eq!(
        streamed.iter().map(Vec::len).collect::<Vec<_>>(),
        lengths,
        "stream and slice chunkers disagree"
    );
    assert_eq!(streamed.concat(), a.data);
    for (i, &len) in lengths.iter().enumerate() {
        assert!(len > 0 && len <= max);
        if i + 1 < lengths.len() {
            assert!(
                len >= min,
                "chunk {i} of {len} bytes is below the minimum {min}"
            );
        }
    }
});
