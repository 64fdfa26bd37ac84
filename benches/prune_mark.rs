//! Peak memory of prune's mark phase on a synthetic index of `PRUNE_MARK_BLOBS` (default 10
//! million) blobs: ingest them into a real local index (redb) in index objects of 100 000
//! entries, build the live set over the index's sorted ids as prune does, mark 80% of them
//! live in scattered order (looking every 50th up in the index, as tree loads do), mark a
//! fifth again (shared trees and chunks), then sweep every id asking whether it is live — the
//! access pattern of prune's mark and pack-usage passes. Prints the time of each phase and the
//! process's peak RSS (VmHWM from /proc/self/status).
//!
//! Run: `cargo bench --bench prune_mark --no-default-features`

use std::time::Instant;

use backup_to_s3::id::Id;
use backup_to_s3::index::LocalIndex;
use backup_to_s3::ops::prune::live::LiveSet;

mod common;
use common::{synthetic_object, vm};

/// Ingest ids 0..n into a local index, 100 000 per index object, 1 000 per pack.
fn synthetic_index(
    dir: &std::path::Path,
    n: u64,
) -> Result<LocalIndex, Box<dyn std::error::Error>> {
    let index = LocalIndex::open(&dir.join("index.redb"))?;
    let per_object = 100_000u64;
    for o in 0..n.div_ceil(per_object) {
        let ids = (o * per_object)..((o + 1) * per_object).min(n);
        let obj = synthetic_object(ids, |i| id(i, n), |i| id(u64::MAX - i, n));
        index.ingest(&format!("{o:064x}"), &obj)?;
    }
    Ok(index)
}

/// The i-th of n ids, ascending in i and spread over the id space like keyed hashes.
fn id(i: u64, n: u64) -> Id {
    let mut b = *blake3::hash(&i.to_le_bytes()).as_bytes();
    b[..8].copy_from_slice(&(i * (u64::MAX / n.max(1))).to_be_bytes());
    Id(b)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::var("PRUNE_MARK_BLOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir()?;
    println!("baseline: VmHWM {}", vm("VmHWM:"));
    let t = Instant::now();
    let index = synthetic_index(dir.path(), n)?;
    println!(
        "index: {n} blobs ingested in {:.1} s, VmHWM {}",
        t.elapsed().as_secs_f64(),
        vm("VmHWM:")
    );
    let t = Instant::now();
    let mut live = LiveSet::new(dir.path(), &mut |f| index.for_each_id(f))?;
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
            if i.is_multiple_of(50) && index.lookup(&id(i, n))?.is_none() {
                return Err("synthetic blob missing from the index".into());
            }
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
