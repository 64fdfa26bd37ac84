#![no_main]
//! Structured trees: encode → decode returns the (sorted) tree exactly when its names are
//! unique and safe, and is refused otherwise.

use backup_to_s3::format::tree::{is_safe_name, Node, Tree};
use fuzz_common::mirror::ArbNode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|nodes: Vec<ArbNode>| {
    let mut tree = Tree {
        nodes: nodes.into_iter().map(Node::from).collect(),
    };
    let plain = tree.encode();
    let valid = tree.nodes.iter().all(|n| is_safe_name(&n.name))
        && tree.nodes.windows(2).all(|w| w[0].name != w[1].name);
    match Tree::decode(&plain) {
        Ok(decoded) => {
            assert!(valid, "decoder accepted an invalid tree");
            assert_eq!(decoded, tree);
        }
        Err(e) => assert!(!valid, "valid tree refused: {e}"),
    }
});
