#![no_main]
//! Structured pack headers: encode → decode is the identity for headers a writer can produce,
//! and whole packs built with PackBuilder list their blobs back.

use backup_to_s3::crypto::aead::OVERHEAD;
use backup_to_s3::format::pack::{self, PackBuilder, PackEntry};
use backup_to_s3::{BlobKind, Id};
use fuzz_common::mirror::ArbEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|arb: Vec<ArbEntry>| {
    let kind = |t: bool| if t { BlobKind::Tree } else { BlobKind::Data };

    // Header plaintext with the lengths as given; offsets follow from them.
    let mut entries = Vec::new();
    let mut offset = 0u64;
    for e in &arb {
        entries.push(PackEntry {
            kind: kind(e.kind),
            id: Id(e.id),
            offset: offset as u32,
            length: e.length,
            raw_length: e.raw_length,
        });
        offset += u64::from(e.length);
    }
    let valid =
        entries.iter().all(|e| e.length as usize > OVERHEAD) && offset <= u64::from(u32::MAX);
    match pack::decode_header(&pack::encode_header(&entries), offset) {
        Ok(decoded) => {
            assert!(valid, "decoder accepted an impossible header");
            assert_eq!(decoded, entries);
        }
        Err(e) => assert!(!valid, "valid header refused: {e}"),
    }

    // Whole packs with small blobs.
    let keys = fuzz_common::subkeys();
    let mut builder = PackBuilder::new();
    for e in &arb {
        let len = OVERHEAD + 1 + (e.length % 256) as usize;
        builder.add(kind(e.kind), Id(e.id), &vec![e.id[0]; len], e.raw_length);
    }
    let (bytes, built) = builder.finish(&keys.meta);
    assert_eq!(
        pack::read_entries(&bytes, &keys.meta).expect("built pack reads back"),
        built
    );
});
