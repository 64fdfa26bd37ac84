//! Library-level behaviour on the in-memory backend: dedup, index rebuild, pending recovery,
//! context binding of sealed blobs.

use std::sync::Arc;

use backup_to_s3::backend::mem::MemBackend;
use backup_to_s3::backend::{Backend, Kind};
use backup_to_s3::format::index::IndexPack;
use backup_to_s3::id::{BlobKind, Id};
use backup_to_s3::repo::writer::WriterOptions;
use backup_to_s3::repo::{OpenOptions, Repository};

use crate::common::*;

fn mem_repo(cache: &std::path::Path) -> (Arc<MemBackend>, Repository) {
    let mem = Arc::new(MemBackend::new());
    Repository::init(mem.clone(), PASSWORD.as_bytes(), &fast_init()).unwrap();
    let repo = Repository::open(
        mem.clone(),
        PASSWORD.as_bytes(),
        &OpenOptions {
            cache_dir: Some(cache.to_path_buf()),
        },
    )
    .unwrap();
    (mem, repo)
}

#[test]
fn blobs_round_trip_and_deduplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (_mem, repo) = mem_repo(dir.path());
    let w = repo.writer(WriterOptions::default());
    let data = pseudo_random(1, 100_000);
    let (id1, new1) = w.add(BlobKind::Data, &data).unwrap();
    let (id2, new2) = w.add(BlobKind::Data, &data).unwrap();
    assert_eq!(id1, id2);
    assert!(new1 && !new2);
    w.finish().unwrap();
    assert_eq!(repo.read_blob(BlobKind::Data, &id1).unwrap(), data);
    // Reading a data blob as a tree fails: the kind is bound into the AEAD.
    assert!(repo.read_blob(BlobKind::Tree, &id1).is_err());
}

#[test]
fn local_index_is_rebuilt_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, repo) = mem_repo(dir.path());
    let w = repo.writer(WriterOptions::default());
    let (id, _) = w.add(BlobKind::Data, b"remember me").unwrap();
    w.finish().unwrap();
    drop(repo);
    std::fs::remove_dir_all(dir.path()).unwrap();
    let repo = Repository::open(
        mem,
        PASSWORD.as_bytes(),
        &OpenOptions {
            cache_dir: Some(dir.path().to_path_buf()),
        },
    )
    .unwrap();
    assert_eq!(repo.read_blob(BlobKind::Data, &id).unwrap(), b"remember me");
}

#[test]
fn pending_packs_of_a_dead_run_are_indexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, repo) = mem_repo(dir.path());
    let w = repo.writer(WriterOptions::default());
    let (id, _) = w.add(BlobKind::Data, b"uploaded, never indexed").unwrap();
    w.finish().unwrap();
    // Simulate the crash window: the pack exists, its index object does not, the cache says pending.
    let index_names: Vec<String> = mem
        .list(Kind::Index)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let obj = repo.load_index_object(&index_names[0]).unwrap();
    mem.delete(Kind::Index, &index_names[0]).unwrap();
    let pack: IndexPack = obj.packs[0].clone();
    repo.index().add_pending(&pack).unwrap();
    drop(repo);
    let repo = Repository::open(
        mem.clone(),
        PASSWORD.as_bytes(),
        &OpenOptions {
            cache_dir: Some(dir.path().to_path_buf()),
        },
    )
    .unwrap();
    assert_eq!(
        mem.list(Kind::Index).unwrap().len(),
        1,
        "the pending pack gets a new index object"
    );
    assert_eq!(
        repo.read_blob(BlobKind::Data, &id).unwrap(),
        b"uploaded, never indexed"
    );
    assert!(repo.index().pending().unwrap().is_empty());
}

#[test]
fn swapped_blob_bytes_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (_mem, repo) = mem_repo(dir.path());
    let a = repo.codec().id(b"first");
    let b = repo.codec().id(b"second");
    let sealed_a = repo.codec().seal(BlobKind::Data, a, b"first");
    assert!(repo
        .codec()
        .open(BlobKind::Data, &a, &sealed_a.sealed)
        .is_ok());
    assert!(
        repo.codec()
            .open(BlobKind::Data, &b, &sealed_a.sealed)
            .is_err(),
        "a blob moved to another id must fail"
    );
}

#[test]
fn dry_run_stores_nothing() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), pseudo_random(2, 1 << 20)).unwrap();
    let s = env.backup(&["--dry-run", src.to_str().unwrap()]);
    assert!(s["snapshot_id"].is_null());
    assert!(s["data_added"].as_u64().unwrap() > 0);
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 0);
    assert!(std::fs::read_dir(env.repo_path().join("data"))
        .unwrap()
        .next()
        .is_none());
}

/// Data packs are streamed to a local repository's disk as they are built: each stored pack is
/// named by the hash of its bytes, no temporary file stays behind, `check --read-data` is clean
/// and the restore is byte-exact.
#[test]
fn streamed_packs_are_whole_and_named_by_their_bytes() {
    let env = Env::new();
    env.init_with(&["--pack-size-mib", "1", "--compression", "1"]);
    let src = env.path("src");
    std::fs::create_dir_all(src.join("small")).unwrap();
    for i in 0..6u64 {
        std::fs::write(src.join(format!("big{i}")), pseudo_random(50 + i, 3 << 20)).unwrap();
    }
    for i in 0..300u64 {
        let f = src.join("small").join(format!("f{i}"));
        std::fs::write(f, pseudo_random(1000 + i, 10 + 97 * i as usize)).unwrap();
    }
    let summary = env.backup(&[src.to_str().unwrap()]);
    assert!(
        summary["packs_written"].as_u64().unwrap() >= 10,
        "{summary}"
    );

    let mut stored = 0u64;
    let mut packs = 0u64;
    for fan in std::fs::read_dir(env.repo_path().join("data")).unwrap() {
        let fan = fan.unwrap();
        let fan_name = fan.file_name().to_string_lossy().into_owned();
        assert!(
            !fan_name.starts_with('.'),
            "temporary file left: {fan_name}"
        );
        for f in std::fs::read_dir(fan.path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "temporary file left: {name}");
            let bytes = std::fs::read(f.path()).unwrap();
            assert_eq!(
                Id::of_object(&bytes).to_hex(),
                name,
                "pack named by its bytes"
            );
            stored += bytes.len() as u64;
            packs += 1;
        }
    }
    assert_eq!(packs, summary["packs_written"].as_u64().unwrap());
    assert_eq!(stored, summary["data_added"].as_u64().unwrap());

    let check = env.run(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
}
