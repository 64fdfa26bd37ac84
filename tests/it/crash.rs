//! A backup killed with SIGKILL leaves a usable repository: no partial snapshot, `check`
//! passes, the next backup succeeds and reuses what was already uploaded.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::*;

fn pack_count(env: &Env) -> usize {
    let mut n = 0;
    for fan in fs::read_dir(env.repo_path().join("data"))
        .into_iter()
        .flatten()
        .flatten()
    {
        n += fs::read_dir(fan.path())
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))
                })
                .count()
            })
            .unwrap_or(0);
    }
    n
}

#[test]
fn sigkill_mid_backup_leaves_a_usable_repository() {
    let env = Env::new();
    env.init_with(&["--pack-size-mib", "1", "--compression", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..12 {
        fs::write(src.join(format!("f{i}")), pseudo_random(100 + i, 8 << 20)).unwrap();
    }
    let mut child = env.cmd().args(["backup", "-q"]).arg(&src).spawn().unwrap();
    let start = Instant::now();
    // Kill once a few packs are stored, well before the end.
    while pack_count(&env) < 6 && start.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let finished_early = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !finished_early,
        "the backup finished before it could be killed; make the input larger"
    );
    let before = pack_count(&env);
    assert!(before >= 6);

    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        0,
        "no partial snapshot may appear"
    );
    let check = env.run(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "check after kill: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let summary = env.backup(&[src.to_str().unwrap()]);
    let total = 12u64 * (8 << 20);
    assert!(
        summary["data_added"].as_u64().unwrap() < total - (3 << 20),
        "the next backup should reuse the packs already uploaded: {summary}"
    );
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
    let check = env.run(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
