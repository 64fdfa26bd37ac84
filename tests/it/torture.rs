//! kill -9 torture: real `backup` processes on a changing tree, SIGKILLed at random moments (a
//! seeded xorshift; set `RELIABILITY_SEED` to replay a run). After every round `check
//! --read-data` is clean and every listed snapshot is a whole one; at the end the next backup
//! succeeds and every snapshot restores byte-exact. `tests/torture.sh` runs the same drill
//! longer against the release binary.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::relutil::*;

const ROUNDS: u64 = 6;

/// Commands besides `backup` to start (and kill at a random moment) every round, after the
/// backup. The hook for later work: `prune` and `forget` join here once they exist, e.g.
/// `vec![vec!["forget".into(), "--keep-last".into(), "3".into(), "--prune".into()]]`.
fn extra_commands(_round: u64) -> Vec<Vec<String>> {
    Vec::new()
}

/// Start `args`, kill it with SIGKILL after `delay` unless it ended; true when it was killed.
fn run_and_kill(env: &Env, args: &[String], delay: Duration) -> bool {
    let mut child = env
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap(); // SIGKILL
    }
    let status = child.wait().unwrap();
    assert!(
        killed || status.success(),
        "{args:?} failed on its own: {status:?}"
    );
    killed
}

/// A round's tree: the shared changes plus a new large file, so every backup uploads packs.
fn change_round(src: &Path, round: u64) {
    change_tree(src, round);
    fs::write(
        src.join(format!("big{round}.bin")),
        pseudo_random(50_000 + round, 3 << 19),
    )
    .unwrap();
    let _ = fs::remove_file(src.join(format!("big{}.bin", round.wrapping_sub(2))));
}

/// Snapshot ids by the round in their `round-N` tag.
fn snapshots_by_round(env: &Env) -> Vec<(String, u64)> {
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tag = s["tags"][0].as_str().unwrap();
            let round = tag.strip_prefix("round-").unwrap().parse().unwrap();
            (s["id"].as_str().unwrap().to_string(), round)
        })
        .collect()
}

fn check_ok(env: &Env) {
    let out = env.run(&["check", "--read-data"]);
    assert!(
        out.status.success(),
        "check after a kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigkilled_backups_never_damage_the_repository() {
    let seed = seed();
    eprintln!("torture seed {seed} (RELIABILITY_SEED to replay)");
    let mut rng = Rng::new(seed);
    let env = Env::new();
    env.init_with(&["--pack-size-mib", "1"]);
    let src = env.path("src");
    let mut expected: BTreeMap<u64, std::path::PathBuf> = BTreeMap::new();
    // Round 0 runs to the end: its duration is the scale of the kill moments.
    change_round(&src, 0);
    copy_tree(&src, &expected_dir(&env, 0));
    expected.insert(0, expected_dir(&env, 0));
    let start = Instant::now();
    env.backup(&["--tag", "round-0", src.to_str().unwrap()]);
    let full = start.elapsed();
    let (mut killed, mut round) = (0, 0);
    // At least ROUNDS rounds, and more (up to three times as many) until two backups were
    // killed: a random moment can fall after a backup ended.
    while round < ROUNDS || (killed < 2 && round < 3 * ROUNDS) {
        round += 1;
        change_round(&src, round);
        copy_tree(&src, &expected_dir(&env, round as usize));
        expected.insert(round, expected_dir(&env, round as usize));
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 5 / 4 + 1));
        let args: Vec<String> = ["backup", "-q", "--tag", &format!("round-{round}")]
            .iter()
            .map(|s| s.to_string())
            .chain([src.display().to_string()])
            .collect();
        let was_killed = run_and_kill(&env, &args, delay);
        killed += u32::from(was_killed);
        for cmd in extra_commands(round) {
            let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
            run_and_kill(&env, &cmd, delay);
        }
        let snaps = snapshots_by_round(&env);
        if !was_killed {
            assert!(snaps.iter().any(|(_, r)| *r == round), "round {round} done");
        }
        check_ok(&env);
    }
    eprintln!("{killed} of {round} backups killed");
    assert!(
        killed >= 2,
        "the kill moments missed the backups (seed {seed})"
    );
    // The next backup succeeds, then every snapshot restores byte-exact.
    env.backup(&["--tag", &format!("round-{round}"), src.to_str().unwrap()]);
    check_ok(&env);
    for (id, round) in snapshots_by_round(&env) {
        let target = env.path(&format!("restore-{id}"));
        env.ok(&["restore", &id, "--target", target.to_str().unwrap()]);
        assert_same_content(&expected[&round], &restored(&target, &src));
        fs::remove_dir_all(&target).unwrap();
    }
}
