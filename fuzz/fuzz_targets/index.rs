#![no_main]
//! Index objects: the plaintext decoder (whose encoding is canonical, so a decoded object must
//! re-encode to the same bytes) and the sealed entry point.

use backup_to_s3::format::blob::AAD_INDEX;
use backup_to_s3::format::index::IndexObject;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = fuzz_common::subkeys();
    let _ = IndexObject::decode(data, &keys.meta);
    if let Ok(obj) = IndexObject::decode_plain(data) {
        assert_eq!(obj.encode_plain(), data, "index encoding is canonical");
        let sealed = fuzz_common::seal(&keys.meta, AAD_INDEX, data);
        assert_eq!(
            IndexObject::decode(&sealed, &keys.meta).expect("sealed index decodes"),
            obj
        );
    }
});
