//! Local faults through the real binary: a full disk (a small tmpfs) and a read-only file system
//! (a read-only bind mount or a tmpfs remounted `ro`; `chmod` would not stop root), both under
//! the repository and under the restore target. Each gives exit 1 with a message naming the
//! path, loses nothing committed, and the next run after the fault is gone succeeds. Needs
//! mount privileges; without them the tests say so and pass vacuously.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use crate::relutil::*;

/// A mount that is undone (lazily, so a busy file cannot keep it) when dropped.
struct Mount {
    dir: PathBuf,
}

impl Mount {
    fn run(args: &[&str], dir: &Path) -> bool {
        Command::new("mount")
            .args(args)
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A tmpfs of `mib` MiB at `dir`, or None (with a note) when mounting is not permitted.
    fn tmpfs(dir: &Path, mib: u32) -> Option<Mount> {
        fs::create_dir_all(dir).unwrap();
        let size = format!("size={mib}m");
        if Self::run(&["-t", "tmpfs", "-o", &size, "tmpfs"], dir) {
            Some(Mount {
                dir: dir.to_path_buf(),
            })
        } else {
            eprintln!("cannot mount a tmpfs (not root?): local fault test skipped");
            None
        }
    }

    /// `from` again at `dir`, read-only.
    fn bind_ro(from: &Path, dir: &Path) -> Option<Mount> {
        fs::create_dir_all(dir).unwrap();
        let mut c = Command::new("mount");
        let ok = c
            .arg("--bind")
            .arg(from)
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot bind-mount (not root?): local fault test skipped");
            return None;
        }
        let m = Mount {
            dir: dir.to_path_buf(),
        };
        assert!(Self::run(&["-o", "remount,bind,ro"], dir));
        Some(m)
    }

    fn remount(&self, opts: &str) {
        assert!(Self::run(&["-o", &format!("remount,{opts}")], &self.dir));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn init_small(env: &Env) {
    env.init_with(&["--pack-size-mib", "1"]);
}

fn failed_naming(out: &Output, what: &str, path: &Path) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(what), "expected {what:?}: {err}");
    assert!(
        err.contains(path.to_str().unwrap()),
        "the message names {}: {err}",
        path.display()
    );
}

fn snapshot_count(env: &Env) -> usize {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    v.as_array().unwrap().len()
}

fn restore_latest_matches(env: &Env, src: &Path, expected: &Path, target: &Path) {
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_content(expected, &restored(target, src));
}

#[test]
fn disk_full_under_the_repository() {
    let env = Env::new();
    let Some(mount) = Mount::tmpfs(&env.repo_path(), 8) else {
        return;
    };
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("small"), pseudo_random(1, 500_000)).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let exp = env.path("exp");
    copy_tree(&src, &exp);
    fs::write(src.join("large"), pseudo_random(2, 10 << 20)).unwrap();
    let out = env.run(&["backup", src.to_str().unwrap()]);
    failed_naming(&out, "No space left", &env.repo_path());
    assert_eq!(
        snapshot_count(&env),
        1,
        "no snapshot from the failed backup"
    );
    restore_latest_matches(&env, &src, &exp, &env.path("t1"));
    assert!(env.run(&["check", "--read-data"]).status.success());
    // Space freed: the next backup succeeds and everything checks.
    mount.remount("size=64m");
    env.backup(&[src.to_str().unwrap()]);
    restore_latest_matches(&env, &src, &src, &env.path("t2"));
    assert!(env.run(&["check", "--read-data"]).status.success());
}

#[test]
fn disk_full_under_the_restore_target() {
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("large"), pseudo_random(3, 10 << 20)).unwrap();
    fs::write(src.join("small"), b"small").unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let target = env.path("target");
    let Some(mount) = Mount::tmpfs(&target, 8) else {
        return;
    };
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    failed_naming(&out, "No space left", &target);
    mount.remount("size=64m");
    restore_latest_matches(&env, &src, &src, &target);
}

#[test]
fn read_only_repository_and_restore_target() {
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), pseudo_random(4, 400_000)).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let exp = env.path("exp");
    copy_tree(&src, &exp);
    let ro = env.path("ro-repo");
    let Some(_bind) = Mount::bind_ro(&env.repo_path(), &ro) else {
        return;
    };
    let via_ro = |args: &[&str]| -> Output {
        env.cmd()
            .env("BACKUP_TO_S3_REPOSITORY", &ro)
            .args(args)
            .output()
            .unwrap()
    };
    // Reading works from a read-only repository; writing fails naming the path.
    let t = env.path("t-ro");
    assert!(
        via_ro(&["restore", "latest", "--target", t.to_str().unwrap()])
            .status
            .success()
    );
    assert_same_content(&exp, &restored(&t, &src));
    assert!(via_ro(&["check", "--read-data"]).status.success());
    fs::write(src.join("b"), pseudo_random(5, 400_000)).unwrap();
    failed_naming(
        &via_ro(&["backup", src.to_str().unwrap()]),
        "Read-only file system",
        &ro,
    );
    assert_eq!(snapshot_count(&env), 1);
    env.backup(&[src.to_str().unwrap()]);
    restore_latest_matches(&env, &src, &src, &env.path("t-rw"));

    // A read-only restore target.
    let target = env.path("ro-target");
    let Some(mount) = Mount::tmpfs(&target, 64) else {
        return;
    };
    mount.remount("ro");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    failed_naming(&out, "Read-only file system", &target);
    mount.remount("rw");
    restore_latest_matches(&env, &src, &src, &target);
}
