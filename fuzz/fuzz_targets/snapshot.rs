#![no_main]
//! Snapshot manifests: the sealed entry point and the plaintext decoder.

use backup_to_s3::format::blob::AAD_SNAPSHOT;
use backup_to_s3::format::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = fuzz_common::subkeys();
    let _ = Snapshot::decode(data, &keys.meta);
    let sealed = fuzz_common::seal(&keys.meta, AAD_SNAPSHOT, data);
    let via_seal = Snapshot::decode(&sealed, &keys.meta).ok();
    let plain = Snapshot::decode_plain(data).ok();
    assert_eq!(via_seal, plain);
    if let Some(snap) = plain {
        let _ = snap.time();
        assert_eq!(
            Snapshot::decode_plain(&snap.encode_plain()).expect("re-encoded snapshot decodes"),
            snap
        );
    }
});
