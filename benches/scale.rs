//! Helpers of the scale benchmark (`benches/scale.sh`): how backup cost grows with the number
//! of blobs a repository already holds. Three subcommands:
//!
//! - `input DIR`: write the fixed 1 GiB input (6 files of 128 MiB and 4,096 files of 64 KiB in
//!   64 folders, each the seeded mixed content of `common::mixed`), unless DIR exists.
//! - `repo DIR N`: `init` a local repository at DIR (default key parameters, password from
//!   `BACKUP_TO_S3_PASSWORD`), then store N synthetic blob entries in it as real sealed index
//!   objects of `SCALE_PER_OBJECT` (default 100 000) entries, 1,000 per (fake) pack. The ids
//!   are random, so a backup finds none of its chunks among them. The packs do not exist:
//!   `check` fails on such a repository; it is only for measuring.
//! - `lookup DIR N [SAMPLES]`: open the repository with the user's cache (already synced by a
//!   CLI command) and time `PackWriter::claim`, the backup's per-chunk dedup lookup, for
//!   2 × SAMPLES (default 200 000) random ids, half of them in the index, in random order;
//!   then the time to record a pack of 128 new blobs as pending (`LocalIndex::add_pending`,
//!   a durable commit that a backup's uploader makes after every pack).
//!
//! Run: `cargo bench --no-default-features --bench scale -- repo /tmp/r 1000000`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use backup_to_s3::backend::local::LocalBackend;
use backup_to_s3::backend::{Backend, Kind, Temperature};
use backup_to_s3::format::index::IndexPack;
use backup_to_s3::id::Id;
use backup_to_s3::repo::writer::WriterOptions;
use backup_to_s3::repo::{default_cache_root, InitOptions, OpenOptions, Repository};

mod common;
use common::{mixed, synthetic_object, vm, Rng};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The i-th synthetic blob id: a hash, so ids are spread like real (keyed-hash) chunk ids.
fn blob_id(i: u64) -> Id {
    let mut h = blake3::Hasher::new();
    h.update(b"scale-blob").update(&i.to_le_bytes());
    Id(*h.finalize().as_bytes())
}

fn pack_id(i: u64) -> Id {
    let mut h = blake3::Hasher::new();
    h.update(b"scale-pack").update(&i.to_le_bytes());
    Id(*h.finalize().as_bytes())
}

fn password() -> Res<String> {
    std::env::var("BACKUP_TO_S3_PASSWORD").map_err(|_| "set BACKUP_TO_S3_PASSWORD".into())
}

fn input(dir: &Path) -> Res<()> {
    if dir.exists() {
        println!("input {} exists", dir.display());
        return Ok(());
    }
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let t = Instant::now();
    for f in 0..6u64 {
        std::fs::write(tmp.join(format!("big-{f}.bin")), mixed(1000 + f, 128 << 20))?;
    }
    for d in 0..64u64 {
        let sub = tmp.join(format!("dir-{d:02}"));
        std::fs::create_dir(&sub)?;
        for f in 0..64u64 {
            std::fs::write(
                sub.join(format!("file-{f:02}")),
                mixed(1_000_000 + d * 64 + f, 64 << 10),
            )?;
        }
    }
    std::fs::rename(&tmp, dir)?;
    println!(
        "input: 1 GiB in {} written in {:.1} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn repo(dir: &Path, n: u64) -> Res<()> {
    let pw = password()?;
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
    let t = Instant::now();
    Repository::init(
        backend.clone(),
        pw.as_bytes(),
        &InitOptions {
            cache_dir: Some(default_cache_root()),
            ..InitOptions::default()
        },
    )?;
    // Open with a throwaway cache: the user's cache stays empty, so the first CLI command
    // after this one builds it from the index objects, as on a new machine.
    let scratch = tempfile::tempdir()?;
    let repo = Repository::open(
        backend.clone(),
        pw.as_bytes(),
        &OpenOptions {
            cache_dir: Some(scratch.path().to_path_buf()),
        },
    )?;
    let key = &repo.codec().keys().meta;
    let per_object: u64 = std::env::var("SCALE_PER_OBJECT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
        .max(1);
    let (mut objects, mut bytes) = (0u64, 0u64);
    for o in 0..n.div_ceil(per_object) {
        let ids = (o * per_object)..((o + 1) * per_object).min(n);
        let sealed = synthetic_object(ids, blob_id, pack_id).encode(key);
        let name = Id::of_object(&sealed).to_hex();
        backend.put(Kind::Index, &name, &sealed, Temperature::Hot)?;
        objects += 1;
        bytes += sealed.len() as u64;
    }
    println!(
        "repo: {} with {n} blobs in {objects} index objects ({:.1} MB) in {:.1} s",
        dir.display(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn lookup(dir: &Path, n: u64, samples: u64) -> Res<()> {
    let pw = password()?;
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
    let repo = Repository::open(backend, pw.as_bytes(), &OpenOptions::default())?;
    let indexed = repo.index().blob_count()?;
    if indexed < n {
        return Err(format!("the local index holds {indexed} blobs, expected {n}").into());
    }
    let writer = repo.writer(WriterOptions {
        dry_run: true,
        ..WriterOptions::default()
    });
    // Hits and misses interleaved at random (no hits in an empty index), each timed alone.
    let mut rng = Rng(0x5ca1_ab1e_d00d_f00d);
    let ids: Vec<(Id, bool)> = (0..2 * samples)
        .map(|_| {
            let hit = n > 0 && rng.next().is_multiple_of(2);
            match hit {
                true => (blob_id(rng.next() % n), true),
                false => (blob_id(n + rng.next() % (1 << 40)), false),
            }
        })
        .collect();
    let (mut total, mut count) = ([0f64; 2], [0u64; 2]);
    for (id, hit) in &ids {
        let t = Instant::now();
        // claim is true for a blob the repository does not have.
        let new = writer.claim(id)?;
        total[usize::from(*hit)] += t.elapsed().as_secs_f64();
        count[usize::from(*hit)] += 1;
        if new == *hit {
            return Err(format!("claim({id}) disagrees with the synthetic index").into());
        }
    }
    let per = |k: usize| (count[k] > 0).then(|| total[k] * 1e6 / count[k] as f64);
    let (miss, hit) = (per(0), per(1));
    drop(writer);
    // What a backup's uploader does after each pack: record it as pending (a durable redb
    // commit of its entries, spread over the whole tree). 32 packs of 128 new blobs each (a
    // 16 MiB pack of ~128 KiB chunks), dropped again afterwards.
    let packs: Vec<IndexPack> = (0..32u64)
        .map(|p| {
            let first = n + (1 << 41) + p * 128;
            synthetic_object(first..first + 128, blob_id, pack_id)
                .packs
                .remove(0)
        })
        .collect();
    let t = Instant::now();
    for p in &packs {
        repo.index().add_pending(p)?;
    }
    let pending_ms = t.elapsed().as_secs_f64() * 1e3 / packs.len() as f64;
    repo.index().drop_pending(&packs)?;
    let show = |v: Option<f64>| v.map_or("-".to_string(), |us| format!("{us:.2}"));
    // One line for scale.sh to parse.
    println!(
        "lookup n={n} indexed={indexed} samples={} hit_us={} miss_us={} pending_ms={pending_ms:.1} vmhwm={}",
        ids.len(),
        show(hit),
        show(miss),
        vm("VmHWM:").replace(' ', "")
    );
    Ok(())
}

fn main() -> Res<()> {
    // `cargo bench` adds `--bench`; flags are not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let num = |i: usize, default: u64| -> Res<u64> {
        Ok(match arg(i) {
            Some(v) => v.replace('_', "").parse()?,
            None => default,
        })
    };
    match (arg(0), arg(1)) {
        (Some("input"), Some(d)) => input(&PathBuf::from(d)),
        (Some("repo"), Some(d)) => repo(&PathBuf::from(d), num(2, 0)?),
        (Some("lookup"), Some(d)) => lookup(&PathBuf::from(d), num(2, 0)?, num(3, 200_000)?),
        // Plain `cargo bench` runs every target: nothing to do without a subcommand.
        (None, _) => {
            println!("usage: scale input DIR | repo DIR N | lookup DIR N [SAMPLES]");
            Ok(())
        }
        _ => Err("usage: scale input DIR | repo DIR N | lookup DIR N [SAMPLES]".into()),
    }
}
