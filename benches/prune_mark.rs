//! Peak memory of prune's mark structure (`ops::prune::live::LiveSet`) on a synthetic index of
//! `PRUNE_MARK_BLOBS` (default 10 million) blob ids: build the set over the sorted ids (as
//! prune does from the local index), mark 80% of them live in scattered order, mark a fifth
//! of those again (shared trees and chunks), then sweep every indexed id asking whether it is
//! live — the access pattern of prune's mark and pack-usage passes. Prints the time of each
//! phase and the process's peak RSS (VmHWM from /proc/self/status).
//!
//! Run: `cargo bench --bench prune_mark --no-default-features`

use std::time::Instant;

use backup_to_s3::id::Id;
use backup_to_s3::ops::prune::live::LiveSet;

/// The i-th of n ids, ascending in i and spread over the id space like keyed hashes.
fn id(i: u64, n: u64) -> Id {
    let mut b = *blake3::hash(&i.to_le_bytes()).as_bytes();
    b[..8].copy_from_slice(&(i * (u64::MAX / n.max(1))).to_be_bytes());
    Id(b)
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
    let t = Instant::now();
    let mut live = LiveSet::new(dir.path(), &mut |f| (0..n).try_for_each(|i| f(id(i, n))))?;
    println!(
        "build: {n} ids in {:.1} s, VmHWM {}",
        t.elapsed().as_secs_f64(),
        vm("VmHWM:")
    );
    let t = Instant::now();
    // A stride coprime with n visits every position once, in scattered order.
    let stride = (0..)
        .map(|k| 7_919 + 2 * k)
        .find(|s| gcd(*s, n) == 1)
        .unwrap_or(1);
    let mut marked = 0u64;
    for k in 0..n {
        let i = (k * stride) % n;
        if !i.is_multiple_of(5) && live.insert(&id(i, n))? {
            marked += 1;
        }
    }
    for i in (1..n).step_by(5) {
        live.insert(&id(i, n))?;
    }
    println!(
        "mark:  {marked} live of {n} in {:.1} s, VmHWM {}",
        t.elapsed().as_secs_f64(),
        vm("VmHWM:")
    );
    let t = Instant::now();
    let mut found = 0u64;
    for i in 0..n {
        found += u64::from(live.contains(&id(i, n))?);
    }
    assert_eq!(found, marked);
    println!(
        "sweep: {n} lookups in {:.1} s, VmHWM {}",
        t.elapsed().as_secs_f64(),
        vm("VmHWM:")
    );
    println!(
        "set holds {:.1} MiB of RAM; peak RSS (VmHWM) for {n} blobs: {}",
        live.memory_bytes() as f64 / f64::from(1 << 20),
        vm("VmHWM:")
    );
    Ok(())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
