//! Files of one chunk are created, written and finished by the fetch in one go: their zero
//! tails stay holes yet keep the length, set-id modes, read-only modes, xattrs and mtimes come
//! back, and whatever is in the way at the target (a symlink out of it, an older file) is
//! replaced without being followed.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::common::*;

#[test]
fn one_chunk_files_restore_exactly_and_replace_what_is_in_the_way() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut zero_tail = b"head".to_vec();
    zero_tail.resize(4 + 10_000, 0);
    let files: [(&str, Vec<u8>, u32); 5] = [
        ("zero-tail", zero_tail, 0o644),
        ("all-zero", vec![0; 6000], 0o640),
        ("setid", b"#!/bin/sh\n".to_vec(), 0o6755),
        ("read-only", pseudo_random(7, 3000), 0o400),
        ("empty", Vec::new(), 0o600),
    ];
    for (i, (name, data, mode)) in files.iter().enumerate() {
        let p = src.join(name);
        fs::write(&p, data).unwrap();
        // Before the mode: setting it needs the file open, which a read-only mode would deny.
        set_mtime(&p, 1_500_000_000 + i as u64, 987_654_321);
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
    }
    xattr::set(src.join("read-only"), "user.note", b"kept").unwrap();
    env.backup(&[src.to_str().unwrap()]);

    let target = env.path("out");
    let target_arg = target.to_str().unwrap();
    env.ok(&["restore", "latest", "--target", target_arg]);
    let out = restored(&target, &src);
    assert_same_tree(&src, &out);
    assert_eq!(
        xattr::get(out.join("read-only"), "user.note").unwrap(),
        Some(b"kept".to_vec())
    );
    let tail = fs::metadata(out.join("zero-tail")).unwrap();
    assert!(
        tail.blocks() * 512 < tail.len(),
        "zero blocks stay holes: {} blocks for {} bytes",
        tail.blocks(),
        tail.len()
    );

    // Restore again over the first restore, with a symlink out of the target and an older,
    // longer file where two files go.
    let outside = env.path("outside");
    fs::write(&outside, b"must not change").unwrap();
    fs::remove_file(out.join("zero-tail")).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("zero-tail")).unwrap();
    fs::remove_file(out.join("setid")).unwrap();
    fs::write(out.join("setid"), vec![b'x'; 50_000]).unwrap();
    env.ok(&["restore", "latest", "--target", target_arg]);
    assert_eq!(fs::read(&outside).unwrap(), b"must not change");
    assert_same_tree(&src, &out);
}
