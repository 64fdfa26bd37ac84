//! Peak memory of prune's mark structure (`ops::prune::live::LiveSet`) on a synthetic index:
//! mark `PRUNE_MARK_BLOBS` (default 10 million) blob ids as live, re-mark a fifth of them (as
//! shared trees and chunks would be), then sweep an index of 1.25× as many entries asking
//! which are live — the access pattern of prune's mark and pack-usage phases. Prints the time
//! of each phase and the process's peak RSS (VmHWM from /proc/self/status).
//!
//! Run: `cargo bench --bench prune_mark --no-default-features`

use std::time::Instant;

use backup_to_s3::id::Id;
use backup_to_s3::ops::prune::live::LiveSet;

fn id(n: u64) -> Id {
    Id(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

fn vm(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::var("PRUNE_MARK_BLOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir()?;
    println!("baseline: VmHWM {}", vm("VmHWM:"));
    let mut live = LiveSet::new(dir.path())?;
    let t = Instant::now();
    for i in 0..n {
        live.insert(&id(i))?;
    }
    for i in (0..n).step_by(5) {
        live.insert(&id(i))?;
    }
    live.flush()?;
    println!(
        "mark:  {n} live ids in {:.1} s, VmHWM {}",
        t.elapsed().as_secs_f64(),
        vm("VmHWM:")
    );
    let t = Instant::now();
    let total = n + n / 4;
    let mut found = 0u64;
    for i in 0..total {
        if live.contains(&id(i))? {
            found += 1;
        }
    }
    assert_eq!(found, n);
    println!(
        "sweep: {total} index entries in {:.1} s, VmHWM {}",
        t.elapsed().as_secs_f64(),
        vm("VmHWM:")
    );
    println!("peak RSS (VmHWM) for {n} blobs: {}", vm("VmHWM:"));
    Ok(())
}
