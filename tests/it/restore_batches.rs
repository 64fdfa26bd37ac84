//! Restore in batches: a snapshot many batches long restores exactly (content, modes, mtimes
//! of files and folders), hard links whose first path lies in an earlier batch stay links, and
//! a selective restore plans the folders on the way to a match and no others.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use backup_to_s3::ops::restore::{restore, RestoreOptions};
use backup_to_s3::progress::NoProgress;
use backup_to_s3::Id;

use crate::common::*;

/// Three folders of files, a deep chain, an empty folder, a symlink and a hard link whose two
/// paths are far apart in tree order; folder mtimes set to the past.
fn make_tree(src: &Path) {
    for (d, dir) in ["a", "b", "c"].iter().enumerate() {
        fs::create_dir_all(src.join(dir)).unwrap();
        for i in 0..7u64 {
            let data = pseudo_random(d as u64 * 100 + i, 500 + 3000 * i as usize);
            fs::write(src.join(dir).join(format!("f{i}")), data).unwrap();
        }
    }
    fs::create_dir_all(src.join("deep/x/y/z")).unwrap();
    fs::write(src.join("deep/x/y/z/leaf"), b"at the bottom").unwrap();
    fs::create_dir_all(src.join("b-empty")).unwrap();
    std::os::unix::fs::symlink("a/f1", src.join("sym")).unwrap();
    fs::hard_link(src.join("a/f0"), src.join("c/zz-link")).unwrap();
    for dir in ["a", "b", "c", "deep", "deep/x/y", "b-empty", ""] {
        set_mtime(&src.join(dir), 1_600_000_000, 123_456_789);
    }
}

fn backup(env: &Env, src: &Path) -> Id {
    env.init();
    let out = env.backup(&[src.to_str().unwrap()]);
    out["snapshot_id"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_snapshot_many_batches_long_restores_exactly() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    let id = backup(&env, &src);
    let repo = env.open();
    // Batches of 1, 2 and 3 entries cut every folder and the hard link's two paths apart.
    for batch_entries in [1, 2, 3] {
        let target = env.path(&format!("out-{batch_entries}"));
        let opts = RestoreOptions {
            batch_entries,
            connections: 2,
            ..Default::default()
        };
        let summary = restore(&repo, &id, &target, &opts, &NoProgress).unwrap();
        let out = restored(&target, &src);
        assert_same_tree(&src, &out);
        assert_eq!(
            fs::metadata(out.join("a/f0")).unwrap().ino(),
            fs::metadata(out.join("c/zz-link")).unwrap().ino(),
            "the hard link must stay a link across batches"
        );
        assert_eq!(summary.files_restored, 23, "21 files, a leaf and a link");
        assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    }
}

/// A file of several chunks with a hole, restored with direct writes (the default) and with
/// `buffered`: the same bytes either way.
#[test]
fn multi_chunk_files_restore_exactly_direct_or_buffered() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = pseudo_random(7, 5_000_001);
    data[1_000_003..1_300_000].fill(0);
    fs::write(src.join("big"), &data).unwrap();
    let id = backup(&env, &src);
    let repo = env.open();
    for buffered in [false, true] {
        let target = env.path(&format!("out-{buffered}"));
        let opts = RestoreOptions {
            buffered,
            connections: 2,
            ..Default::default()
        };
        let summary = restore(&repo, &id, &target, &opts, &NoProgress).unwrap();
        assert!(
            summary.chunks_fetched > 1,
            "the file must span several chunks"
        );
        let out = restored(&target, &src);
        assert!(
            fs::read(out.join("big")).unwrap() == data,
            "buffered={buffered}"
        );
    }
}

#[test]
fn a_selective_restore_in_batches_plans_only_the_folders_on_the_way() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src);
    let id = backup(&env, &src);
    let repo = env.open();
    let target = env.path("sel");
    let opts = RestoreOptions {
        includes: vec!["leaf".into(), "f6".into()],
        batch_entries: 2,
        ..Default::default()
    };
    let summary = restore(&repo, &id, &target, &opts, &NoProgress).unwrap();
    let out = restored(&target, &src);
    assert_eq!(
        fs::read(out.join("deep/x/y/z/leaf")).unwrap(),
        b"at the bottom"
    );
    for dir in ["a", "b", "c"] {
        let names: Vec<_> = fs::read_dir(out.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["f6"], "only the match in {dir}");
    }
    assert!(
        !out.join("b-empty").exists(),
        "a folder with no match is not restored"
    );
    assert!(!out.join("sym").exists());
    // The folders on the way get their own metadata back.
    let m = fs::metadata(out.join("deep/x/y")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!(summary.files_restored, 4);
}
