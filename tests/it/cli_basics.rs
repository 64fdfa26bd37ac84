//! End-to-end through the real binary: round trips, incremental backups, selection, keys.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// A tree with every kind of entry and metadata the format records.
pub(crate) fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("dir/big.bin"), pseudo_random(1, 3 << 20)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("dir/sub/small.txt"), b"hello world\n").unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"not-utf8-\xff\xfe")),
        b"odd name",
    )
    .unwrap();
    let sparse = File::create(root.join("sparse")).unwrap();
    sparse.set_len(16 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"data in the middle", 8 << 20).unwrap();
    drop(sparse);
    std::os::unix::fs::symlink("sub/small.txt", root.join("dir/rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("abs-link")).unwrap();
    fs::hard_link(root.join("dir/sub/small.txt"), root.join("hardlink")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        let dev = std::ffi::CString::new(root.join("null-dev").as_os_str().as_bytes()).unwrap();
        assert_eq!(
            unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
            0
        );
    }
    fs::set_permissions(root.join("dir/big.bin"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::set_permissions(root.join("dir/sub"), fs::Permissions::from_mode(0o750)).unwrap();
    let _ = xattr::set(root.join("dir/sub/small.txt"), "user.comment", b"kept");
    set_mtime(&root.join("dir/big.bin"), 1_600_000_000, 123_456_789);
    set_mtime(&root.join("empty"), 1_500_000_000, 1);
    set_mtime(&root.join("dir/sub"), 1_400_000_000, 999_999_999);
    set_mtime(&root.join("dir"), 1_300_000_000, 42);
}

#[test]
fn round_trip_of_every_file_kind() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src);
    let summary = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["files_unreadable"], 0);
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let out = restored(&target, &src);
    assert_same_tree(&src, &out);
    // Hard links come back as one inode; sparse files stay sparse.
    let (a, b) = (
        fs::metadata(out.join("hardlink")).unwrap(),
        fs::metadata(out.join("dir/sub/small.txt")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    let sparse = fs::metadata(out.join("sparse")).unwrap();
    assert_eq!(sparse.len(), 16 << 20);
    assert!(
        sparse.blocks() * 512 < (4 << 20),
        "sparse file restored dense: {} blocks",
        sparse.blocks()
    );
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(
            fs::symlink_metadata(out.join("null-dev")).unwrap().rdev(),
            libc::makedev(1, 3)
        );
    }
    let check = env.run(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn unchanged_backup_reads_nothing_and_force_rereads() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src);
    let first = env.backup(&[src.to_str().unwrap()]);
    assert!(first["bytes_read"].as_u64().unwrap() > 3 << 20);
    let second = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(second["bytes_read"], 0, "{second}");
    assert_eq!(second["files_new"], 0);
    assert_eq!(second["files_changed"], 0);
    assert!(second["files_unmodified"].as_u64().unwrap() >= 5);
    assert_eq!(second["parent"], first["snapshot_id"]);
    assert_eq!(second["chunks_new"], 0);
    let forced = env.backup(&["--force", src.to_str().unwrap()]);
    assert_eq!(forced["bytes_read"], first["bytes_read"]);
    assert_eq!(
        forced["chunks_new"], 0,
        "re-read data must deduplicate: {forced}"
    );
}

/// The no-op path reuses the parent's xattrs while inode and ctime are unchanged; setting an
/// xattr changes the ctime, so the next backup must see it (on files and folders).
#[test]
fn an_xattr_change_alone_is_backed_up() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/file"), b"content stays the same").unwrap();
    env.backup(&[src.to_str().unwrap()]);
    if xattr::set(src.join("d/file"), "user.tag", b"v2").is_err() {
        panic!("the test filesystem must support user xattrs");
    }
    xattr::set(src.join("d"), "user.tag", b"dir").unwrap();
    let second = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(second["files_changed"], 1, "{second}");
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let out = restored(&target, &src);
    assert_eq!(
        xattr::get(out.join("d/file"), "user.tag")
            .unwrap()
            .as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(
        xattr::get(out.join("d"), "user.tag").unwrap().as_deref(),
        Some(&b"dir"[..])
    );
}

#[test]
fn insertion_in_the_middle_adds_few_chunks() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = pseudo_random(7, 24 << 20);
    fs::write(src.join("large"), &data).unwrap();
    let first = env.backup(&[src.to_str().unwrap()]);
    let chunks = first["chunks_new"].as_u64().unwrap();
    assert!(chunks >= 8, "expected many chunks, got {chunks}");
    data.splice(
        12 << 20..12 << 20,
        b"inserted bytes shift everything after".iter().copied(),
    );
    fs::write(src.join("large"), &data).unwrap();
    let second = env.backup(&[src.to_str().unwrap()]);
    assert_eq!(second["files_changed"], 1);
    let new = second["chunks_new"].as_u64().unwrap();
    assert!(
        (1..=3).contains(&new),
        "an insertion should change 1–3 chunks, changed {new}"
    );
    assert!(second["chunks_deduplicated"].as_u64().unwrap() >= chunks - 3);
    assert!(second["data_added"].as_u64().unwrap() < (10 << 20));
}

#[test]
fn identical_data_in_another_folder_is_deduplicated() {
    let env = Env::new();
    env.init();
    let (a, b) = (env.path("a"), env.path("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let data = pseudo_random(3, 6 << 20);
    fs::write(a.join("f"), &data).unwrap();
    fs::write(b.join("copy"), &data).unwrap();
    let first = env.backup(&[a.to_str().unwrap()]);
    let second = env.backup(&[b.to_str().unwrap()]);
    assert_eq!(second["chunks_new"], 0, "{second}");
    assert_eq!(second["chunks_deduplicated"], first["chunks_new"]);
    assert!(second["data_added"].as_u64().unwrap() < 64 << 10);
}

#[test]
fn point_in_time_and_selective_restore() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/app.conf"), b"version 1").unwrap();
    fs::write(src.join("data.bin"), b"bulk v1").unwrap();
    env.backup(&[src.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(1100));
    fs::write(src.join("etc/app.conf"), b"version 2").unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let snaps = list.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    for key in ["id", "time", "hostname", "paths", "tags", "tree"] {
        assert!(snaps[0].get(key).is_some(), "snapshots --json lacks {key}");
    }
    // Just after the first snapshot, before the second: restores version 1.
    let t0: jiff::Timestamp = snaps[0]["time"].as_str().unwrap().parse().unwrap();
    let at = (t0 + jiff::SignedDuration::from_millis(500)).to_string();
    let target = env.path("pit");
    env.ok(&["restore", "--at", &at, "--target", target.to_str().unwrap()]);
    assert_eq!(
        fs::read(restored(&target, &src).join("etc/app.conf")).unwrap(),
        b"version 1"
    );
    // Selective: only *.conf of the latest.
    let sel = env.path("sel");
    env.ok(&[
        "restore",
        "latest",
        "--include",
        "*.conf",
        "--target",
        sel.to_str().unwrap(),
    ]);
    let out = restored(&sel, &src);
    assert_eq!(fs::read(out.join("etc/app.conf")).unwrap(), b"version 2");
    assert!(
        !out.join("data.bin").exists(),
        "--include must restore only matching files"
    );
    // Before any snapshot: a clear error.
    let early = env.run(&[
        "restore",
        "--at",
        "2001-01-01 00:00",
        "--target",
        sel.to_str().unwrap(),
    ]);
    assert_eq!(early.status.code(), Some(1));
}

#[test]
fn wrong_password_and_missing_repository_have_their_exit_codes() {
    let env = Env::new();
    let missing = env.run(&["snapshots"]);
    assert_eq!(
        missing.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    env.init();
    let out = env
        .cmd()
        .env("BACKUP_TO_S3_PASSWORD", "wrong")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    // Init twice is refused.
    assert_eq!(
        env.run(&["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn stdin_backup_restores_the_stream() {
    let env = Env::new();
    env.init();
    let data = pseudo_random(11, 3 << 20);
    let mut child = env
        .cmd()
        .args(["backup", "--json", "--stdin", "--stdin-filename", "db.sql"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &data).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary = last_json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(summary["bytes_read"], data.len() as u64);
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(fs::read(target.join("db.sql")).unwrap() == data);
}

#[test]
fn dump_writes_one_file_to_stdout() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    // Several chunks, a run of zeros among them.
    let mut data = pseudo_random(12, 9 << 20);
    data[3 << 20..5 << 20].fill(0);
    fs::write(src.join("sub/big.bin"), &data).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let inside = format!("{}/sub/big.bin", src.display());
    let out = env.run(&["dump", "latest", &inside]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "dumped {} bytes", out.stdout.len());
    // A folder or a missing path is refused, and nothing is written.
    for (path, says) in [
        (format!("{}/sub", src.display()), "not a file"),
        (format!("{}/nope", src.display()), "no such path"),
    ] {
        let out = env.run(&["dump", "latest", &path]);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn excludes_and_unreadable_files() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("cache")).unwrap();
    fs::create_dir_all(src.join("keep")).unwrap();
    fs::write(src.join("a.tmp"), b"x").unwrap();
    fs::write(src.join("keep/b.txt"), b"y").unwrap();
    fs::write(src.join("cache/.nobackup"), b"").unwrap();
    fs::write(src.join("cache/c.txt"), b"z").unwrap();
    let excl = env.path("excludes");
    fs::write(&excl, "# comment\n*.tmp\n").unwrap();
    let out = env
        .cmd()
        .args([
            "backup",
            "--json",
            "--exclude-file",
            excl.to_str().unwrap(),
            "--exclude-if-present",
            ".nobackup",
        ])
        .arg(&src)
        .arg("/proc/self/mem") // a regular file that cannot be read, even by root
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = last_json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(summary["files_unreadable"], 1);
    assert!(
        summary["snapshot_id"].is_string(),
        "the snapshot is still made"
    );
    let listing = env.ok(&["ls", "latest"]);
    assert!(listing.contains("keep/b.txt"));
    assert!(!listing.contains("a.tmp"), "{listing}");
    assert!(!listing.contains("c.txt"), "{listing}");
}

#[test]
fn keys_add_list_remove_and_passwd() {
    let env = Env::new();
    env.init();
    let pwfile = env.path("pw2");
    fs::write(&pwfile, "second password\n").unwrap();
    env.ok(&[
        "key",
        "add",
        "--new-password-file",
        pwfile.to_str().unwrap(),
    ]);
    let keys: serde_json::Value =
        serde_json::from_str(&env.ok(&["key", "list", "--json"])).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let second = env
        .cmd()
        .env("BACKUP_TO_S3_PASSWORD", "second password")
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    assert!(second.status.success());
    let first_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = env
        .cmd()
        .env("BACKUP_TO_S3_PASSWORD", "second password")
        .args(["key", "remove", &first_id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.run(&["snapshots"]).status.code(),
        Some(12),
        "the removed password must no longer open"
    );
    let pw3 = env.path("pw3");
    fs::write(&pw3, "third").unwrap();
    let out = env
        .cmd()
        .env("BACKUP_TO_S3_PASSWORD", "second password")
        .args([
            "key",
            "passwd",
            "--new-password-file",
            pw3.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env
        .cmd()
        .env("BACKUP_TO_S3_PASSWORD", "third")
        .arg("snapshots")
        .output()
        .unwrap()
        .status
        .success());
    assert_eq!(
        env.cmd()
            .env("BACKUP_TO_S3_PASSWORD", "second password")
            .arg("snapshots")
            .output()
            .unwrap()
            .status
            .code(),
        Some(12)
    );
}

#[test]
fn ls_diff_find_and_cat() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("one.txt"), b"1").unwrap();
    fs::write(src.join("two.txt"), b"2").unwrap();
    let s1 = env.backup(&[src.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::remove_file(src.join("one.txt")).unwrap();
    fs::write(src.join("two.txt"), b"22").unwrap();
    fs::write(src.join("three.txt"), b"3").unwrap();
    let s2 = env.backup(&[src.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let diff = env.ok(&["diff", &s1[..8], &s2[..8]]);
    assert!(
        diff.lines()
            .any(|l| l.starts_with('-') && l.ends_with("one.txt")),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.ends_with("three.txt")),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('M') && l.ends_with("two.txt")),
        "{diff}"
    );
    let found: serde_json::Value =
        serde_json::from_str(&env.ok(&["find", "--json", "one.txt"])).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    let long = env.ok(&["ls", "--long", &s2]);
    assert!(long.contains("-rw-"), "{long}");
    let cfg: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "config"])).unwrap();
    assert_eq!(cfg["compression_level"], 3);
    let snap: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "snapshot", &s2])).unwrap();
    let tree = snap["tree"].as_str().unwrap();
    env.ok(&["cat", "tree", tree]);
}
