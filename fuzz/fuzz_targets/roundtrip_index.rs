#![no_main]
//! Structured index objects: encode → decode is the identity unless a blob range overflows.

use backup_to_s3::format::index::{IndexObject, IndexPack};
use backup_to_s3::format::pack::PackEntry;
use backup_to_s3::{BlobKind, Id};
use fuzz_common::mirror::ArbIndex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|a: ArbIndex| {
    let obj = IndexObject {
        supersedes: a.supersedes.into_iter().map(Id).collect(),
        packs: a
            .packs
            .into_iter()
            .map(|(pack, entries)| IndexPack {
                pack: Id(pack),
                entries: entries
                    .into_iter()
                    .map(|e| PackEntry {
                        kind: if e.kind {
                            BlobKind::Tree
                        } else {
                            BlobKind::Data
                        },
                        id: Id(e.id),
                        offset: e.offset,
                        length: e.length,
                        raw_length: e.raw_length,
                    })
                    .collect(),
            })
            .collect(),
    };
    let valid = obj
        .packs
        .iter()
        .flat_map(|p| &p.entries)
        .all(|e| e.offset.checked_add(e.length).is_some());
    let plain = obj.encode_plain();
    match IndexObject::decode_plain(&plain) {
        Ok(decoded) => {
            assert!(valid, "decoder accepted an overflowing range");
            assert_eq!(decoded, obj);
        }
        Err(e) => assert!(!valid, "valid index refused: {e}"),
    }
});
