//! Concurrent writers into one local repository: two backup processes (`--host a`, `--host b`)
//! started at the same moment, sharing one cache folder, so one of them meets the other's lock on
//! the local index and works on a private copy (`LocalIndex::open`). Both snapshots complete and
//! restore exactly, and `check --read-data` finds no lost index entries.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;

use backup_to_s3::ops::backup::{backup, BackupOptions, Source};
use backup_to_s3::progress::NoProgress;
use backup_to_s3::Id;

use crate::common::*;
use crate::relutil::*;

fn spawn_backup(env: &Env, host: &str, src: &Path) -> Child {
    env.cmd()
        .args(["backup", "--json", "--host", host])
        .arg(src)
        .env("BACKUP_TO_S3_LOG", "backup_to_s3=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Two trees with their own files and a large file in common, so both writers upload the same
/// chunks at the same time.
fn fill(src: &Path, host: &str, round: u64) {
    fs::create_dir_all(src.join("sub")).unwrap();
    let shared = pseudo_random(7_000 + round, 2 << 20);
    fs::write(src.join("shared.bin"), shared).unwrap();
    let seed = 8_000 + round * 10 + u64::from(host.as_bytes()[0]);
    fs::write(
        src.join(format!("own-{round}.bin")),
        pseudo_random(seed, 1 << 20),
    )
    .unwrap();
    fs::write(src.join("sub/host.txt"), format!("{host} {round}\n")).unwrap();
}

#[test]
fn two_processes_back_up_into_one_repository_at_once() {
    let env = Env::new();
    env.init_with(&["--pack-size-mib", "1"]);
    let hosts = ["a", "b"];
    let srcs: Vec<PathBuf> = hosts
        .iter()
        .map(|h| env.path(&format!("src-{h}")))
        .collect();
    let mut expected: Vec<(String, u64, PathBuf)> = Vec::new();
    let mut private_used = false;
    for round in 0..2u64 {
        for (h, src) in hosts.iter().zip(&srcs) {
            fill(src, h, round);
            let exp = env.path(&format!("expect-{h}-{round}"));
            copy_tree(src, &exp);
            expected.push((h.to_string(), round, exp));
        }
        let children: Vec<Child> = hosts
            .iter()
            .zip(&srcs)
            .map(|(h, s)| spawn_backup(&env, h, s))
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "concurrent backup failed: {stderr}");
            let summary = last_json(&String::from_utf8_lossy(&out.stdout));
            assert!(summary["snapshot_id"].is_string());
            private_used |= stderr.contains("private copy");
        }
    }
    eprintln!("a writer used a private index copy: {private_used}");
    let check = env.run(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 4);
    for (host, round, exp) in &expected {
        // Each host's snapshots, oldest first: the round-th is this round's.
        let ids: Vec<&str> = list
            .iter()
            .filter(|s| s["hostname"] == host.as_str())
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        let id = ids[*round as usize];
        let target = env.path(&format!("out-{host}-{round}"));
        env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
        let src = &srcs[if host == "a" { 0 } else { 1 }];
        assert_same_content(exp, &restored(&target, src));
    }
}

#[test]
fn a_second_writer_in_one_process_uses_a_private_index() {
    let env = Env::new();
    init_local(&env);
    // The first handle holds the shared cache file; the second must fall back to a private copy.
    let first = open_with(&env, local(&env)).unwrap();
    let second = open_with(&env, local(&env)).unwrap();
    let srcs: Vec<PathBuf> = ["x", "y"]
        .iter()
        .map(|h| env.path(&format!("src-{h}")))
        .collect();
    for (i, src) in srcs.iter().enumerate() {
        fill(src, ["x", "y"][i], 0);
    }
    let repos = [Arc::new(first), Arc::new(second)];
    let ids: Vec<Id> = std::thread::scope(|s| {
        let handles: Vec<_> = repos
            .iter()
            .zip(&srcs)
            .zip(["x", "y"])
            .map(|((repo, src), host)| {
                s.spawn(move || {
                    let opts = BackupOptions {
                        host: Some(host.to_string()),
                        connections: 2,
                        ..Default::default()
                    };
                    let paths = [src.clone()];
                    let sum = backup(repo, Source::Paths(&paths), &opts, &NoProgress).unwrap();
                    sum.snapshot_id.unwrap().parse::<Id>().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    drop(repos);
    check_clean(&env);
    for (id, src) in ids.iter().zip(&srcs) {
        let exp = env.path(&format!("expect-{}", id.short()));
        copy_tree(src, &exp);
        assert_restores(&env, id, src, &exp);
    }
}
