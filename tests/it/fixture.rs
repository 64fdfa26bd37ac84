//! The pinned repository of format v1 (format-spec/fixtures/v1/repo, written by the first
//! release) must stay readable: restore it and compare with the tree it was made from.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::common::*;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn format_v1_fixture_restores_exactly() {
    let env = Env::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/fixtures/v1/repo");
    copy_dir(&fixture, &env.repo_path());
    let run = |args: &[&str]| {
        let out = env
            .cmd()
            .env("BACKUP_TO_S3_PASSWORD", "fixture-v1")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let snaps: serde_json::Value = serde_json::from_str(&run(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(snaps[0]["hostname"], "fixture");
    assert_eq!(snaps[0]["tags"][0], "v1");
    let target = env.path("out");
    run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let root = target.join("tmp/fx/src");
    assert_eq!(
        fs::read(root.join("hello.txt")).unwrap(),
        b"hello, format v1\n"
    );
    assert!(fs::read(root.join("dir/data.bin")).unwrap() == pseudo_random(42, 300_000));
    assert_eq!(
        fs::read_link(root.join("dir/link")).unwrap(),
        Path::new("../hello.txt")
    );
    let hello = fs::metadata(root.join("hello.txt")).unwrap();
    assert_eq!(hello.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        (hello.mtime(), hello.mtime_nsec()),
        (1_700_000_000, 123_456_789)
    );
    let data = fs::metadata(root.join("dir/data.bin")).unwrap();
    assert_eq!(
        (data.mtime(), data.mtime_nsec()),
        (1_700_000_001, 987_654_321)
    );
    run(&["check", "--read-data"]);
}
