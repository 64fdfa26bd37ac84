#![no_main]
//! Key files: JSON parsing and validation. Unlocking is skipped on purpose: it runs argon2id
//! (at least 8 MiB and one pass), which would spend the fuzzer's time in the KDF.

use backup_to_s3::format::keyfile::KeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = KeyFile::decode(data) {
        let again = KeyFile::decode(&kf.encode()).expect("re-encoded key file decodes");
        assert_eq!(again.sealed, kf.sealed);
        assert_eq!(again.salt, kf.salt);
        assert_eq!(again.kdf_params, kf.kdf_params);
    }
});
