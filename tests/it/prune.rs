//! forget, tag and prune through the real binary: the right snapshots are kept, space is freed,
//! partly used packs are repacked, a killed prune never loses data, and a backup racing
//! `forget --prune` completes and restores exactly (gc.md §6).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backup_to_s3::backend::local::LocalBackend;
use backup_to_s3::backend::{BResult, Backend, Kind, Temperature};
use backup_to_s3::id::Id;
use backup_to_s3::ops::prune::{self, PruneOptions};
use backup_to_s3::repo::{OpenOptions, Repository};

use crate::common::*;

fn init_small(env: &Env) {
    env.init_with(&["--pack-size-mib", "1"]);
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(p).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

/// Every regular file below `p`, relative path → content.
fn files(p: &Path) -> BTreeMap<String, Vec<u8>> {
    fn go(base: &Path, p: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(p).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                go(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    go(p, p, &mut out);
    out
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn check_clean(env: &Env) {
    let out = env.run(&["check", "--read-data"]);
    assert!(
        out.status.success(),
        "check --read-data: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restore `id` and compare the files of `src` with what `want` recorded.
fn assert_restores(env: &Env, id: &str, src: &Path, want: &BTreeMap<String, Vec<u8>>) {
    let target = env.path(&format!("restore-{}", &id[..8]));
    let _ = fs::remove_dir_all(&target);
    env.ok(&["restore", id, "--target", target.to_str().unwrap(), "-q"]);
    let got = files(&restored(&target, src));
    assert!(got == *want, "snapshot {id} does not restore byte-exact");
    fs::remove_dir_all(&target).unwrap();
}

#[test]
fn forget_keeps_the_right_snapshots_and_tags_rewrite() {
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut ids = Vec::new();
    for i in 0..4u64 {
        fs::write(src.join("f"), pseudo_random(i, 10_000)).unwrap();
        let s = env.backup(&[src.to_str().unwrap()]);
        ids.push(s["snapshot_id"].as_str().unwrap().to_string());
    }
    // Dry run: decisions, nothing removed.
    let out = env.ok(&["forget", "--keep-last", "2", "--dry-run", "--json"]);
    let r = last_json(&out);
    assert_eq!(
        (r["kept"].as_u64(), r["removed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(snapshot_ids(&env).len(), 4);
    let decided: Vec<(String, bool)> = r["groups"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["keep"].as_bool().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, bool)> = ids
        .iter()
        .rev()
        .enumerate()
        .map(|(i, id)| (id.clone(), i < 2))
        .collect();
    assert_eq!(decided, want);

    // Protect the oldest: it survives keep-last 1.
    let p = last_json(&env.ok(&["protect", &ids[0][..8], "--json"]));
    let protected = p["new"].as_str().unwrap().to_string();
    env.ok(&["forget", "--keep-last", "1"]);
    let mut left = snapshot_ids(&env);
    left.sort();
    let mut want = vec![protected.clone(), ids[3].clone()];
    want.sort();
    assert_eq!(left, want);
    let cat: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "snapshot", &protected])).unwrap();
    assert_eq!(cat["original"].as_str(), Some(ids[0].as_str()));
    assert!(cat["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "protected"));

    // tag --set / --remove rewrite; unprotect makes it forgettable.
    let t = last_json(&env.ok(&["tag", &protected[..8], "--add", "x", "--json"]));
    let tagged = t["new"].as_str().unwrap().to_string();
    env.ok(&["unprotect", &tagged[..8]]);
    env.ok(&["forget", "--keep-last", "1"]);
    assert_eq!(snapshot_ids(&env), vec![ids[3].clone()]);
    // Explicit ids.
    env.ok(&["forget", &ids[3][..8]]);
    assert!(snapshot_ids(&env).is_empty());
}

#[test]
fn prune_frees_space_waits_for_grace_and_keeps_snapshots_restorable() {
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..3u64 {
        fs::write(src.join(format!("big{i}")), pseudo_random(50 + i, 1 << 20)).unwrap();
    }
    env.backup(&[src.to_str().unwrap()]);
    for i in 0..3u64 {
        fs::write(src.join(format!("big{i}")), pseudo_random(90 + i, 1 << 20)).unwrap();
    }
    fs::write(src.join("small"), b"hello").unwrap();
    let last = env.backup(&[src.to_str().unwrap()]);
    let last_id = last["snapshot_id"].as_str().unwrap().to_string();
    let want = files(&src);
    let before = dir_size(&env.repo_path().join("data"));

    // Default grace: phase one only; nothing is deleted yet.
    let dry = last_json(&env.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--dry-run",
        "--json",
    ]));
    assert!(dry["bytes_unused"].as_u64().unwrap() >= 3 << 20, "{dry}");
    let r = last_json(&env.ok(&["forget", "--keep-last", "1", "--prune", "--json"]));
    assert!(r["plan"].is_string(), "{r}");
    assert_eq!(r["bytes_freed"].as_u64(), Some(0));
    assert_eq!(dir_size(&env.repo_path().join("data")), before);
    assert_restores(&env, &last_id, &src, &want);
    check_clean(&env);

    // --now completes the waiting plan.
    let r = last_json(&env.ok(&["prune", "--now", "--json"]));
    assert_eq!(r["plans_completed"].as_u64(), Some(1), "{r}");
    assert!(r["bytes_freed"].as_u64().unwrap() >= 3 << 20, "{r}");
    let after = dir_size(&env.repo_path().join("data"));
    assert!(after + (3 << 20) <= before, "{before} -> {after}");
    assert!(fs::read_dir(env.repo_path().join("plans"))
        .unwrap()
        .next()
        .is_none());
    assert_restores(&env, &last_id, &src, &want);
    check_clean(&env);
    // Nothing left to do: a second prune is a no-op.
    let r = last_json(&env.ok(&["prune", "--now", "--json"]));
    assert!(r["plan"].is_null() && r["packs_repacked"] == 0, "{r}");
}

#[test]
fn partly_used_packs_are_repacked() {
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Twenty 40 KiB files share one 1 MiB pack; then half of them go away.
    for i in 0..20u64 {
        fs::write(
            src.join(format!("f{i:02}")),
            pseudo_random(300 + i, 40 << 10),
        )
        .unwrap();
    }
    env.backup(&[src.to_str().unwrap()]);
    for i in (0..20u64).step_by(2) {
        fs::remove_file(src.join(format!("f{i:02}"))).unwrap();
    }
    let last = env.backup(&[src.to_str().unwrap()]);
    let id = last["snapshot_id"].as_str().unwrap().to_string();
    let want = files(&src);
    let r = last_json(&env.ok(&["forget", "--keep-last", "1", "--prune", "--now", "--json"]));
    assert!(r["packs_repacked"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["bytes_freed"].as_u64().unwrap() >= 300 << 10, "{r}");
    assert_restores(&env, &id, &src, &want);
    check_clean(&env);
}

#[test]
fn dead_trees_are_repacked_even_within_the_unused_share() {
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    // Two folders of twenty 40 KiB files; then one file of `a` goes. The second backup reuses
    // `b`'s tree from the first one's tree pack, whose trees of `a` and the root die.
    for dir in ["a", "b"] {
        fs::create_dir_all(src.join(dir)).unwrap();
        for i in 0..20u64 {
            let seed = 7000 + i + if dir == "a" { 0 } else { 100 };
            fs::write(
                src.join(dir).join(format!("f{i:02}")),
                pseudo_random(seed, 40 << 10),
            )
            .unwrap();
        }
    }
    env.backup(&[src.to_str().unwrap()]);
    fs::remove_file(src.join("a/f00")).unwrap();
    let last = env.backup(&[src.to_str().unwrap()]);
    let id = last["snapshot_id"].as_str().unwrap().to_string();
    let want = files(&src);
    // 40 KiB of 1.6 MB of data is dead (2.5%, within the default 5%): only the tree pack goes.
    let r = last_json(&env.ok(&["forget", "--keep-last", "1", "--prune", "--now", "--json"]));
    assert_eq!(r["packs_repacked"], 1, "{r}");
    assert!(r["bytes_repacked"].as_u64().unwrap() < 64 << 10, "{r}");
    assert_restores(&env, &id, &src, &want);
    check_clean(&env);
}

#[test]
fn max_unused_is_a_share_of_the_repository_not_of_each_pack() {
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Forty 1 MiB packs of ~25 files each; then two neighbours in every hundred files go:
    // ~8% of ten packs, but only 2% of the repository, is dead.
    for i in 0..1000u64 {
        fs::write(
            src.join(format!("f{i:04}")),
            pseudo_random(5000 + i, 40 << 10),
        )
        .unwrap();
    }
    env.backup(&[src.to_str().unwrap()]);
    for i in (0..1000u64).step_by(100) {
        for f in [i, i + 1] {
            fs::remove_file(src.join(format!("f{f:04}"))).unwrap();
        }
    }
    let last = env.backup(&[src.to_str().unwrap()]);
    let id = last["snapshot_id"].as_str().unwrap().to_string();
    let want = files(&src);
    env.ok(&["forget", "--keep-last", "1"]);
    let at = |share: &str| {
        let out = env.ok(&["prune", "--now", "--json", "--max-unused", share]);
        last_json(&out)
    };
    // Within the default 5%: nothing is rewritten.
    let r = at("5%");
    assert_eq!(r["packs_repacked"], 0, "{r}");
    // 1%: the most wasteful packs go until at most 1% is unused, so some are left...
    let r = at("1%");
    assert!(r["packs_repacked"].as_u64().unwrap() >= 1, "{r}");
    // ...for 0%, which rewrites every pack with a dead byte.
    let r = at("0%");
    assert!(r["packs_repacked"].as_u64().unwrap() >= 1, "{r}");
    let r = at("0%");
    assert_eq!(r["packs_repacked"], 0, "{r}");
    assert_restores(&env, &id, &src, &want);
    check_clean(&env);
}

/// A local repository whose ranged reads count as billed (as on S3), so prune's repack reads
/// each pack with one request instead of in pieces.
struct Billed(LocalBackend);

impl Backend for Billed {
    fn location(&self) -> String {
        self.0.location()
    }
    fn create(&self) -> BResult<()> {
        self.0.create()
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()> {
        self.0.put(kind, name, data, temp)
    }
    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        self.0.get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
        self.0.get_range(kind, name, offset, len)
    }
    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        self.0.stat(kind, name)
    }
    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        self.0.list(kind)
    }
    fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        self.0.delete(kind, name)
    }
}

/// `forget --keep-last 1` and a prune with `--now`: through the binary (a local repository:
/// packs are read in pieces), or with `billed` through the library over `Billed` (one read
/// per pack). Returns the prune report as JSON.
fn forget_and_prune(env: &Env, billed: bool) -> serde_json::Value {
    if !billed {
        return last_json(&env.ok(&["forget", "--keep-last", "1", "--prune", "--now", "--json"]));
    }
    env.ok(&["forget", "--keep-last", "1", "-q"]);
    let repo = Repository::open(
        Arc::new(Billed(LocalBackend::new(env.repo_path()))),
        PASSWORD.as_bytes(),
        &OpenOptions {
            cache_dir: Some(env.path("cache")),
        },
    )
    .unwrap();
    assert!(!repo.backend().cheap_ranges());
    let opts = PruneOptions {
        grace: Duration::ZERO,
        ..Default::default()
    };
    serde_json::to_value(prune::prune(&repo, &opts).unwrap()).unwrap()
}

/// Pack files in the repository (spread over fan-out folders).
fn pack_count(env: &Env) -> usize {
    let fans = fs::read_dir(env.repo_path().join("data")).unwrap();
    fans.flatten()
        .map(|fan| fs::read_dir(fan.path()).unwrap().count())
        .sum()
}

fn pack_path(env: &Env, pack: &Id) -> PathBuf {
    env.repo_path().join(Kind::Pack.path(&pack.to_hex()))
}

#[test]
fn repack_copies_no_damaged_blob_and_keeps_the_damaged_pack() {
    for billed in [false, true] {
        let env = Env::new();
        init_small(&env);
        let src = env.path("src");
        fs::create_dir_all(&src).unwrap();
        // As in partly_used_packs_are_repacked: one pack, half of it dead after the 2nd backup.
        for i in 0..20u64 {
            let data = pseudo_random(500 + i, 40 << 10);
            fs::write(src.join(format!("f{i:02}")), data).unwrap();
        }
        env.backup(&[src.to_str().unwrap()]);
        for i in (0..20u64).step_by(2) {
            fs::remove_file(src.join(format!("f{i:02}"))).unwrap();
        }
        let last = env.backup(&[src.to_str().unwrap()]);
        let id = last["snapshot_id"].as_str().unwrap().to_string();
        let mut want = files(&src);
        // One flipped byte in the middle of a live blob (f01 is kept).
        let hit = chunk_locations(&env)["f01"][0];
        let path = pack_path(&env, &hit.pack);
        let mut bytes = fs::read(&path).unwrap();
        bytes[(hit.offset + hit.length / 2) as usize] ^= 0x01;
        fs::write(&path, &bytes).unwrap();

        let r = forget_and_prune(&env, billed);
        let warned = r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(&hit.pack.to_hex()));
        assert!(warned, "billed {billed}: {r}");
        // The pack is neither condemned nor deleted: its intact blobs are still there...
        assert!(path.exists(), "billed {billed}: damaged pack deleted: {r}");
        assert!(
            r["plans_waiting"].as_array().unwrap().is_empty(),
            "billed {billed}: {r}"
        );
        // ... and the damaged blob was not copied: check finds it in that one pack only, and
        // only f01 is affected.
        let check = env.run(&["check", "--read-data", "--json"]);
        let check: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
        assert_eq!(
            check["damaged_packs"],
            serde_json::json!([hit.pack.to_hex()]),
            "billed {billed}: {check:#}"
        );
        let affected: Vec<&str> = check["affected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap().rsplit('/').next().unwrap())
            .collect();
        assert_eq!(affected, ["f01"], "billed {billed}: {check:#}");
        // Everything else restores byte-exact.
        let target = env.path("restore");
        env.ok(&[
            "restore",
            &id,
            "--target",
            target.to_str().unwrap(),
            "--exclude",
            "f01",
            "-q",
        ]);
        let all = want.clone();
        want.remove("f01");
        assert!(
            files(&restored(&target, &src)) == want,
            "billed {billed}: intact files do not restore byte-exact"
        );
        // The next prune tries the kept pack again but copies none of its intact blobs a
        // second time: the first prune's copies hold them.
        let packs_before = pack_count(&env);
        let again = forget_and_prune(&env, billed);
        assert_eq!(again["packs_repacked"], 0, "billed {billed}: {again}");
        assert_eq!(again["bytes_repack_written"], 0, "billed {billed}: {again}");
        assert!(
            path.exists(),
            "billed {billed}: damaged pack deleted: {again}"
        );
        assert_eq!(pack_count(&env), packs_before, "billed {billed}: {again}");
        // Once the byte is mended, the pack goes: its blobs that the first prune's copies also
        // hold are copied from it all the same (those copies are not verified), and every
        // file restores byte-exact.
        bytes[(hit.offset + hit.length / 2) as usize] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let mended = forget_and_prune(&env, billed);
        assert!(
            !path.exists(),
            "billed {billed}: mended pack kept: {mended}"
        );
        assert!(
            mended["warnings"].as_array().unwrap().is_empty(),
            "{mended}"
        );
        // Every live blob of it is copied: more than the intact ones the first prune copied.
        let written = |r: &serde_json::Value| r["bytes_repack_written"].as_u64().unwrap();
        assert!(
            written(&mended) > written(&r),
            "billed {billed}: {r} {mended}"
        );
        check_clean(&env);
        let target = env.path("restore-all");
        env.ok(&["restore", &id, "--target", target.to_str().unwrap(), "-q"]);
        assert!(
            files(&restored(&target, &src)) == all,
            "billed {billed}: files do not restore byte-exact after the mended pack went"
        );
    }
}

#[test]
fn a_pack_larger_than_a_read_piece_is_repacked_byte_exact() {
    // Local repack reads packs in 4 MiB pieces: a 12 MiB pack has live blobs that straddle
    // piece boundaries, and every one must be copied intact.
    const PIECE: u32 = 4 << 20;
    for billed in [false, true] {
        let env = Env::new();
        env.init_with(&["--pack-size-mib", "16"]);
        let src = env.path("src");
        fs::create_dir_all(&src).unwrap();
        for i in 0..12u64 {
            fs::write(
                src.join(format!("f{i:02}")),
                pseudo_random(700 + i, 1 << 20),
            )
            .unwrap();
        }
        env.backup(&[src.to_str().unwrap()]);
        let locs = chunk_locations(&env);
        let big = locs["f01"][0].pack;
        assert!(fs::metadata(pack_path(&env, &big)).unwrap().len() > 8 << 20);
        let straddles = |f: &String| {
            locs[f]
                .iter()
                .any(|l| l.pack == big && l.offset / PIECE != (l.offset + l.length - 1) / PIECE)
        };
        // Delete every third file, except those holding a blob that straddles a piece: the
        // repack must copy those. At most three piece boundaries lie inside the pack, so at
        // least one of the four files goes (8% of the pack dead, over the 5% threshold).
        let mut deleted = 0;
        for i in (0..12u64).step_by(3) {
            let f = format!("f{i:02}");
            if !straddles(&f) {
                fs::remove_file(src.join(&f)).unwrap();
                deleted += 1;
            }
        }
        assert!(deleted >= 1);
        let last = env.backup(&[src.to_str().unwrap()]);
        let id = last["snapshot_id"].as_str().unwrap().to_string();
        let want = files(&src);
        assert!(
            want.keys().any(straddles),
            "no live blob straddles a piece: {locs:?}"
        );

        let r = forget_and_prune(&env, billed);
        assert_eq!(r["warnings"], serde_json::json!([]), "billed {billed}: {r}");
        assert!(
            r["packs_repacked"].as_u64().unwrap() >= 1,
            "billed {billed}: {r}"
        );
        assert!(
            !pack_path(&env, &big).exists(),
            "billed {billed}: the big pack was not repacked: {r}"
        );
        assert_restores(&env, &id, &src, &want);
        check_clean(&env);
    }
}

#[test]
fn a_chunk_and_a_tree_with_the_same_id_are_both_repacked() {
    // An empty folder's tree is the two bytes 01 00; a file of those bytes is one chunk with
    // the same id. Both must survive a repack of their (partly dead) packs, each as its kind.
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(src.join("empty")).unwrap();
    fs::write(src.join("same"), [1u8, 0]).unwrap();
    for i in 0..8u64 {
        let dir = src.join(format!("d{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("f"), pseudo_random(900 + i, 30 << 10)).unwrap();
    }
    env.backup(&[src.to_str().unwrap()]);
    let repo = env.open();
    let (_, snap) = repo.list_snapshots().unwrap().remove(0);
    let mut tree = repo.load_tree(&snap.tree).unwrap();
    for part in src.iter().skip(1) {
        let next = tree
            .nodes
            .iter()
            .find(|n| n.name_lossy() == part.to_string_lossy());
        tree = repo.load_tree(&next.unwrap().subtree.unwrap()).unwrap();
    }
    let node = |name: &str| tree.nodes.iter().find(|n| n.name_lossy() == name).unwrap();
    assert_eq!(
        node("empty").subtree,
        node("same").content.first().copied(),
        "the premise: the chunk and the tree share an id"
    );
    drop(repo);
    // The other folders and their data go: both packs become repack candidates.
    for i in 0..8u64 {
        fs::remove_dir_all(src.join(format!("d{i}"))).unwrap();
    }
    let last = env.backup(&[src.to_str().unwrap()]);
    let id = last["snapshot_id"].as_str().unwrap().to_string();
    let want = files(&src);
    let r = forget_and_prune(&env, false);
    assert!(r["packs_repacked"].as_u64().unwrap() >= 2, "{r}");
    check_clean(&env);
    assert_restores(&env, &id, &src, &want);
    let target = env.path("restore-all");
    env.ok(&["restore", &id, "--target", target.to_str().unwrap(), "-q"]);
    assert!(restored(&target, &src).join("empty").is_dir());
}

#[test]
fn prune_removes_only_stale_temporary_files() {
    let env = Env::new();
    init_small(&env);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(77, 100_000)).unwrap();
    let id = env.backup(&[src.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let want = files(&src);
    let repo = env.repo_path();
    // Older than the default --stale-after of 2 h.
    let old = SystemTime::now() - Duration::from_secs(3 * 3600);
    let make = |path: PathBuf, len: usize, stale: bool| -> PathBuf {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, vec![7u8; len]).unwrap();
        if stale {
            let f = fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(old).unwrap();
        }
        path
    };
    // What killed writers leave: a streamed pack, a pack `put` into its fan-out folder, an
    // index object's and the config's temporary files.
    let stale = [
        make(repo.join("data/.tmp-0123456789abcdef"), 5000, true),
        make(repo.join("data/ab/.tmp-ab12-0011223344556677"), 300, true),
        make(repo.join("index/.tmp-cd34-8899aabbccddeeff"), 200, true),
        make(repo.join(".tmp-config-0123456789abcdef"), 100, true),
    ];
    let outside = env.path("outside");
    let kept = [
        // A running backup's file.
        make(repo.join("data/.tmp-fedcba9876543210"), 1000, false),
        // Old, but not a temporary file, or not in an object folder.
        make(repo.join("data/.keep"), 10, true),
        make(repo.join("data/not-a-fan/.tmp-0123456789abcdef"), 10, true),
        make(repo.join("stray/.tmp-0123456789abcdef"), 10, true),
        // Behind symlinks (an old file, a folder holding one): never followed.
        make(outside.join(".tmp-target"), 10, true),
        make(outside.join("fan/.tmp-0123456789abcdef"), 10, true),
    ];
    std::os::unix::fs::symlink(&kept[4], repo.join("data/.tmp-link")).unwrap();
    // A fan-out name that no pack of this repository uses.
    let fan = (0..=255u8)
        .map(|b| repo.join("data").join(format!("{b:02x}")))
        .find(|p| !p.exists())
        .unwrap();
    std::os::unix::fs::symlink(outside.join("fan"), &fan).unwrap();
    let exists = |p: &Path| fs::symlink_metadata(p).is_ok();

    let dry = last_json(&env.ok(&["prune", "--dry-run", "--json"]));
    assert_eq!(
        (
            dry["temp_files_removed"].as_u64(),
            dry["temp_bytes_removed"].as_u64()
        ),
        (Some(4), Some(5600)),
        "{dry}"
    );
    assert!(stale.iter().all(|p| p.exists()), "a dry run removed files");

    let r = last_json(&env.ok(&["prune", "--json"]));
    assert_eq!(
        (
            r["temp_files_removed"].as_u64(),
            r["temp_bytes_removed"].as_u64()
        ),
        (Some(4), Some(5600)),
        "{r}"
    );
    for p in &stale {
        assert!(!exists(p), "{} was not removed", p.display());
    }
    for p in kept.iter().chain([&repo.join("data/.tmp-link"), &fan]) {
        assert!(exists(p), "{} was removed", p.display());
    }
    // The human summary says so.
    make(repo.join("snapshots/.tmp-0123456789abcdef"), 2048, true);
    let out = env.ok(&["prune"]);
    assert!(
        out.contains("removed 1 stale temporary file(s) (2.00 KiB)"),
        "{out}"
    );
    assert_restores(&env, &id, &src, &want);
}

fn kill_after(mut child: Child, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    let _ = child.wait();
}

/// A small seeded generator (xorshift) for the property test.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn random_backup_forget_prune_and_kill_sequences_lose_nothing() {
    for case in 0..8u64 {
        let env = Env::new();
        init_small(&env);
        let src = env.path("src");
        fs::create_dir_all(&src).unwrap();
        let mut rng = Rng(0x5EED_0000 + case * 7919);
        let mut recorded: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        for step in 0..7u64 {
            match rng.next(5) {
                0 | 1 => {
                    for _ in 0..=rng.next(3) {
                        let f = src.join(format!("f{}", rng.next(6)));
                        let len = 1 + rng.next(300_000) as usize;
                        fs::write(f, pseudo_random(case * 1000 + step * 10 + rng.next(9), len))
                            .unwrap();
                    }
                    let s = env.backup(&[src.to_str().unwrap()]);
                    recorded.insert(s["snapshot_id"].as_str().unwrap().into(), files(&src));
                }
                2 => {
                    let keep = (1 + rng.next(2)).to_string();
                    env.ok(&["forget", "--keep-last", &keep, "--prune", "--now", "-q"]);
                }
                3 => {
                    let child = env.cmd().args(["prune", "--now", "-q"]).spawn().unwrap();
                    kill_after(child, rng.next(400));
                }
                _ => {
                    let keep = (1 + rng.next(2)).to_string();
                    env.ok(&["forget", "--keep-last", &keep, "-q"]);
                    let child = env.cmd().args(["prune", "--now", "-q"]).spawn().unwrap();
                    kill_after(child, rng.next(400));
                }
            }
        }
        env.ok(&["prune", "--now", "-q"]);
        let ids = snapshot_ids(&env);
        for id in &ids {
            assert_restores(&env, id, &src, &recorded[id]);
        }
        check_clean(&env);
    }
}

#[test]
fn a_backup_racing_forget_prune_succeeds_and_restores() {
    for round in 0..3u64 {
        let env = Env::new();
        init_small(&env);
        let (src, old) = (env.path("src"), env.path("old"));
        fs::create_dir_all(&src).unwrap();
        fs::create_dir_all(&old).unwrap();
        for i in 0..6u64 {
            let v1 = pseudo_random(round * 100 + i, 2 << 20);
            fs::write(src.join(format!("f{i}")), &v1).unwrap();
            fs::write(old.join(format!("f{i}")), &v1).unwrap();
        }
        env.backup(&["--host", "main", src.to_str().unwrap()]);
        for i in 0..6u64 {
            fs::write(
                src.join(format!("f{i}")),
                pseudo_random(round * 100 + 50 + i, 1 << 20),
            )
            .unwrap();
        }
        env.backup(&["--host", "main", src.to_str().unwrap()]);
        // The racer backs up the old version (deduplicating against blobs being condemned).
        let racer = env
            .cmd()
            .args(["backup", "--json", "--host", "racer"])
            .arg(&old)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(round * 60));
        let pruner = env
            .cmd()
            .args([
                "forget",
                "--host",
                "main",
                "--keep-last",
                "1",
                "--prune",
                "--now",
                "--json",
            ])
            .output()
            .unwrap();
        let racer = racer.wait_with_output().unwrap();
        assert!(racer.status.success(), "racing backup failed");
        assert!(
            pruner.status.success(),
            "{}",
            String::from_utf8_lossy(&pruner.stderr)
        );
        let id = last_json(&String::from_utf8_lossy(&racer.stdout))["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string();
        // A later prune completes whatever waited for the racer.
        env.ok(&["prune", "--now", "-q"]);
        assert_restores(&env, &id, &old, &files(&old));
        check_clean(&env);
    }
}
