#![no_main]
//! Config objects: the unauthenticated prefix, then the sealed body's plaintext decoder.

use backup_to_s3::format::blob::AAD_CONFIG;
use backup_to_s3::format::config::{Config, CONFIG_MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = fuzz_common::subkeys();
    let _ = Config::peek_version(data);
    let _ = Config::decode(data, &keys.meta);

    // The input as the plaintext of a well-sealed config object.
    let mut object = CONFIG_MAGIC.to_vec();
    object.extend_from_slice(&1u32.to_le_bytes());
    object.extend(fuzz_common::seal(&keys.meta, AAD_CONFIG, data));
    if let Ok(config) = Config::decode(&object, &keys.meta) {
        assert!(config.validate().is_ok());
        let again = Config::decode(&config.encode(&keys.meta), &keys.meta)
            .expect("re-encoded config decodes");
        assert_eq!(again, config);
    }
});
