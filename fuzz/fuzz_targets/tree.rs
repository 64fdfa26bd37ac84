#![no_main]
//! Tree blobs' plaintext: bincode decoding, limits, sorted unique safe names.

use backup_to_s3::format::tree::{is_safe_name, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(data) {
        assert!(tree.nodes.iter().all(|n| is_safe_name(&n.name)));
        assert!(tree.nodes.windows(2).all(|w| w[0].name < w[1].name));
        // bincode accepts non-minimal varints, so compare values, not bytes.
        let mut copy = tree.clone();
        assert_eq!(
            Tree::decode(&copy.encode()).expect("re-encoded tree decodes"),
            tree
        );
    }
});
