//! forget, tag and prune through the real binary: the right snapshots are kept, space is freed,
//! partly used packs are repacked, a killed prune never loses data, and a backup racing
//! `forget --prune` completes and restores exactly (gc.md §6).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

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
