//! Helpers of the reliability tests (faults, torture, concurrency, local faults): a seeded RNG,
//! tree copies and content comparison, library-level repository handling on a local folder.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_to_s3::backend::local::LocalBackend;
use backup_to_s3::backend::{Backend, Kind};
use backup_to_s3::ops::check::{check, CheckOptions, CheckReport};
use backup_to_s3::ops::restore::{restore, RestoreOptions};
use backup_to_s3::progress::NoProgress;
use backup_to_s3::repo::{DynBackend, InitOptions, OpenOptions, Repository};
use backup_to_s3::Id;

use crate::common::*;

/// xorshift64*: a tiny seeded RNG, so runs are reproducible without a new dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The seed of randomised tests: `RELIABILITY_SEED` or a fixed default; printed on failure paths.
pub fn seed() -> u64 {
    std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0007)
}

/// Small packs and a fast KDF, as `init --kdf-memory-mib 8 --kdf-iterations 1 --pack-size-mib 1`.
pub fn small_init() -> InitOptions {
    InitOptions {
        pack_target_size: 1 << 20,
        ..fast_init()
    }
}

/// Change a source tree for round `round`: new files, rewritten files, deletions, links.
pub fn change_tree(src: &Path, round: u64) {
    let mut rng = Rng::new(round + 1);
    fs::create_dir_all(src.join(format!("d{}", round % 3))).unwrap();
    fs::write(
        src.join(format!("r{round}.bin")),
        pseudo_random(1000 + round, 200_000 + rng.below(300_000) as usize),
    )
    .unwrap();
    if round.is_multiple_of(2) {
        fs::write(src.join("common.bin"), pseudo_random(round, 600_000)).unwrap();
    }
    let old = src.join(format!("r{}.bin", round.wrapping_sub(3)));
    let _ = fs::remove_file(old);
    fs::write(
        src.join(format!("d{}/note.txt", round % 3)),
        format!("round {round}\n").repeat(1 + round as usize),
    )
    .unwrap();
    let link = src.join("latest-link");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("r{round}.bin"), &link).unwrap();
    fs::write(src.join("empty-file"), b"").unwrap();
    fs::create_dir_all(src.join("empty-dir")).unwrap();
}

/// Copy a tree (folders, files, symlinks) as the expected content of a snapshot.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (a, b) = (e.path(), to.join(e.file_name()));
        let m = fs::symlink_metadata(&a).unwrap();
        if m.is_dir() {
            copy_tree(&a, &b);
        } else if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&a).unwrap(), &b).unwrap();
        } else {
            fs::copy(&a, &b).unwrap();
        }
    }
}

/// Same names, kinds, file bytes and link targets (metadata is the business of other tests).
pub fn assert_same_content(expected: &Path, got: &Path) {
    let names = |p: &Path| {
        let mut v: Vec<_> = fs::read_dir(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let (na, nb) = (names(expected), names(got));
    assert_eq!(na, nb, "entries of {}", got.display());
    for n in na {
        let (a, b) = (expected.join(&n), got.join(&n));
        let (ma, mb) = (
            fs::symlink_metadata(&a).unwrap(),
            fs::symlink_metadata(&b).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "type of {}", b.display());
        if ma.is_dir() {
            assert_same_content(&a, &b);
        } else if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&a).unwrap(), fs::read_link(&b).unwrap());
        } else {
            assert_eq!(ma.size(), mb.size(), "size of {}", b.display());
            assert!(
                fs::read(&a).unwrap() == fs::read(&b).unwrap(),
                "content of {}",
                b.display()
            );
        }
    }
}

pub fn local(env: &Env) -> Arc<LocalBackend> {
    Arc::new(LocalBackend::new(env.repo_path()))
}

pub fn init_local(env: &Env) {
    Repository::init(local(env), PASSWORD.as_bytes(), &small_init()).unwrap();
}

pub fn open_with(env: &Env, backend: DynBackend) -> backup_to_s3::Result<Repository> {
    Repository::open(
        backend,
        PASSWORD.as_bytes(),
        &OpenOptions {
            cache_dir: Some(env.path("cache")),
        },
    )
}

/// Snapshot objects in storage, damaged or not.
pub fn snapshot_objects(env: &Env) -> usize {
    local(env).list(Kind::Snapshot).unwrap().len()
}

/// `check --read-data` without the decorator; no errors allowed (warnings are).
pub fn check_clean(env: &Env) -> CheckReport {
    let repo = open_with(env, local(env)).unwrap();
    let opts = CheckOptions {
        read_data: true,
        read_data_subset: None,
        ..Default::default()
    };
    let r = check(&repo, &opts, &NoProgress).unwrap();
    assert!(r.errors.is_empty(), "check found errors: {:#?}", r.errors);
    r
}

/// Restore a snapshot through plain storage and compare it with its expected tree.
pub fn assert_restores(env: &Env, id: &Id, src: &Path, expected: &Path) {
    let repo = open_with(env, local(env)).unwrap();
    let target = env.path(&format!("restore-{}", id.short()));
    let _ = fs::remove_dir_all(&target);
    let opts = RestoreOptions {
        connections: 2,
        ..Default::default()
    };
    restore(&repo, id, &target, &opts, &NoProgress).unwrap();
    assert_same_content(expected, &restored(&target, src));
    fs::remove_dir_all(&target).unwrap();
}

/// Where the expected copy of round `n` goes.
pub fn expected_dir(env: &Env, n: usize) -> PathBuf {
    env.path(&format!("expect-{n}"))
}
