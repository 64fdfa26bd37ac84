//! Stage micro-benchmarks of the backup/restore engine, on the library's own code paths:
//! chunking (the streaming path backup uses, and the in-memory one), chunk ids (keyed BLAKE3),
//! sealing/opening per zstd level, pack building, index lookups (redb vs an in-memory set), and
//! restore planning (tree walk, index lookups and chunk placement of a 20 000-file snapshot).
//!
//! `cargo bench --bench engine` (add `-- chunker` etc. to filter). The input is a deterministic
//! 32 MiB mix (a third incompressible, a third text-like, a sixth zeros, a sixth repetitive
//! binary-like); `BENCH_SAMPLE=/path/to/file` uses the first 32 MiB of a real file instead
//! (e.g. the corpus image: `/tmp/bench-data-small/vmimage/vm.img`).

use std::collections::HashSet;
use std::hint::black_box;
use std::io::{Cursor, Read};
use std::time::Duration;

use backup_to_s3::chunker::{ChunkBuffer, Chunker};
use backup_to_s3::codec::Codec;
use backup_to_s3::crypto::MasterKey;
use backup_to_s3::format::config::ChunkerParams;
use backup_to_s3::format::pack::PackBuilder;
use backup_to_s3::index::LocalIndex;
use backup_to_s3::{BlobKind, Id};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;

const SAMPLE: usize = 32 << 20;

fn sample() -> Vec<u8> {
    if let Ok(p) = std::env::var("BENCH_SAMPLE") {
        let mut buf = Vec::with_capacity(SAMPLE);
        if let Ok(f) = std::fs::File::open(&p) {
            let _ = f.take(SAMPLE as u64).read_to_end(&mut buf);
        }
        if buf.len() == SAMPLE {
            return buf;
        }
        eprintln!("BENCH_SAMPLE {p} shorter than 32 MiB; using the synthetic mix");
    }
    common::mixed(0x9e37_79b9_7f4a_7c15, SAMPLE)
}

fn keys() -> backup_to_s3::crypto::SubKeys {
    MasterKey::from_bytes([7u8; 32]).subkeys()
}

fn chunker(c: &mut Criterion) {
    let data = sample();
    let ch = Chunker::new(ChunkerParams::default(), keys().chunker_seed);
    let mut g = c.benchmark_group("chunker");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    // What backup runs: chunks lent from one reusable read buffer.
    let mut buf = ChunkBuffer::default();
    g.bench_function("for_each_chunk", |b| {
        b.iter(|| {
            let mut n = 0usize;
            let r = ch.for_each_chunk(Cursor::new(&data[..]), &mut buf, &mut (), |c, ()| {
                n += c.len();
                Ok::<_, std::io::Error>(())
            });
            black_box((n, r.is_ok()))
        })
    });
    // What the backup walker runs per file: cut points and each chunk's keyed id, on a rayon
    // worker of a two-thread pool so the id is computed beside the scan, as in a backup.
    let keys = keys();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("bench thread pool");
    g.bench_function("for_each_chunk_with_id", |b| {
        b.iter(|| {
            pool.install(|| {
                let mut n = 0usize;
                let mut hasher = keys.blob_hasher();
                let r =
                    ch.for_each_chunk(Cursor::new(&data[..]), &mut buf, &mut hasher, |c, id| {
                        n += c.len() + id.0[0] as usize;
                        Ok::<_, std::io::Error>(())
                    });
                black_box((n, r.is_ok()))
            })
        })
    });
    // fastcdc's StreamCDC (what backup used before): one buffer per stream, a Vec per chunk.
    g.bench_function("stream_cdc", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for chunk in ch.chunks(Cursor::new(&data[..])) {
                n += chunk.map(|c| c.len()).unwrap_or(0);
            }
            black_box(n)
        })
    });
    // Cut points only, over a buffer in memory: the gear-hash floor.
    g.bench_function("in_memory_cut_points", |b| {
        b.iter(|| black_box(ch.cut_lengths(&data).len()))
    });
    g.finish();
}

fn hash(c: &mut Criterion) {
    let data = sample();
    let codec = Codec::new(keys(), 3);
    let mut g = c.benchmark_group("chunk_id");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let chunk = &data[..1 << 20];
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("keyed_blake3_1MiB", |b| {
        b.iter(|| black_box(codec.id(chunk)))
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let data = sample();
    let chunks: Vec<&[u8]> = data.chunks(1 << 20).collect();
    let mut g = c.benchmark_group("codec");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(data.len() as u64));
    for level in [1, 3, 9] {
        let codec = Codec::new(keys(), level);
        let ids: Vec<Id> = chunks.iter().map(|c| codec.id(c)).collect();
        g.bench_with_input(BenchmarkId::new("seal", level), &level, |b, _| {
            b.iter(|| {
                let mut n = 0;
                for (c, id) in chunks.iter().zip(&ids) {
                    n += codec.seal(BlobKind::Data, *id, c).sealed.len();
                }
                black_box(n)
            })
        });
        let sealed: Vec<Vec<u8>> = chunks
            .iter()
            .zip(&ids)
            .map(|(c, id)| codec.seal(BlobKind::Data, *id, c).sealed)
            .collect();
        let stored: usize = sealed.iter().map(Vec::len).sum();
        eprintln!(
            "codec level {level}: {} -> {} bytes ({:.2}x)",
            data.len(),
            stored,
            data.len() as f64 / stored as f64
        );
        g.bench_with_input(BenchmarkId::new("open_verify", level), &level, |b, _| {
            b.iter(|| {
                let mut n = 0;
                for (s, id) in sealed.iter().zip(&ids) {
                    n += codec
                        .open(BlobKind::Data, id, s)
                        .map(|p| p.len())
                        .unwrap_or(0);
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

fn pack(c: &mut Criterion) {
    let k = keys();
    let blob = vec![0xa5u8; 1 << 20];
    let ids: Vec<Id> = (0..16u8).map(|i| Id([i; 32])).collect();
    let mut g = c.benchmark_group("pack");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(16 << 20));
    g.bench_function("build_16MiB_of_1MiB_blobs", |b| {
        b.iter(|| {
            let mut p = PackBuilder::new();
            for id in &ids {
                p.add(BlobKind::Data, *id, &blob, blob.len() as u32);
            }
            black_box(p.finish(&k.meta).0.len())
        })
    });
    g.finish();
}

fn index(c: &mut Criterion) {
    const N: u32 = 200_000;
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("index bench skipped: {e}");
            return;
        }
    };
    let idx = match LocalIndex::open(&dir.path().join("index.redb")) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("index bench skipped: {e}");
            return;
        }
    };
    let id_of = |i: u32| {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        Id(*blake3::hash(&b).as_bytes())
    };
    let obj = common::synthetic_object(
        0..u64::from(N),
        |i| id_of(i as u32),
        |i| id_of(u32::MAX - (i / 1000) as u32),
    );
    if let Err(e) = idx.ingest("bench", &obj) {
        eprintln!("index bench skipped: {e}");
        return;
    }
    let set: HashSet<Id> = (0..N).map(id_of).collect();
    let hits: Vec<Id> = (0..1000).map(|i| id_of(i * 197 % N)).collect();
    let misses: Vec<Id> = (0..1000).map(|i| id_of(N + i)).collect();
    let mut g = c.benchmark_group("index_200k");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1000));
    for (name, ids) in [("hit", &hits), ("miss", &misses)] {
        g.bench_function(format!("redb_lookup_{name}"), |b| {
            b.iter(|| {
                ids.iter()
                    .filter(|id| matches!(idx.lookup(id), Ok(Some(_))))
                    .count()
            })
        });
        g.bench_function(format!("hashset_{name}"), |b| {
            b.iter(|| ids.iter().filter(|id| set.contains(*id)).count())
        });
    }
    g.finish();
}

/// Restore planning: a dry-run restore walks the snapshot's trees, looks every chunk up in the
/// local index and places it in its file, which is all a real restore does before fetching.
fn restore_plan(c: &mut Criterion) {
    use backup_to_s3::backend::local::LocalBackend;
    use backup_to_s3::format::keyfile::KdfParams;
    use backup_to_s3::ops::backup::{backup, BackupOptions, Source};
    use backup_to_s3::ops::restore::{restore, RestoreOptions};
    use backup_to_s3::progress::NoProgress;
    use backup_to_s3::repo::{InitOptions, OpenOptions, Repository};
    const FILES: usize = 20_000;
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    // 200 folders of 100 files, 1–16 KiB each: the planner's cost is per entry and per chunk.
    let src = dir.path().join("src");
    let mut rng = common::Rng(7);
    for f in 0..FILES {
        let d = src.join(format!("d{:03}", f / 100));
        let len = 1024 + (rng.next() % (15 * 1024)) as usize;
        let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if std::fs::create_dir_all(&d)
            .and_then(|()| std::fs::write(d.join(format!("f{f:05}")), body))
            .is_err()
        {
            return;
        }
    }
    let backend = std::sync::Arc::new(LocalBackend::new(dir.path().join("repo")));
    let pw = b"bench";
    let init = InitOptions {
        kdf: KdfParams {
            m_cost: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        },
        ..Default::default()
    };
    let opened = Repository::init(backend.clone(), pw, &init).and_then(|_| {
        Repository::open(
            backend,
            pw,
            &OpenOptions {
                cache_dir: Some(dir.path().join("cache")),
            },
        )
    });
    let Ok(repo) = opened else {
        eprintln!("restore_plan bench skipped: cannot create a repository");
        return;
    };
    let paths = [src];
    let Ok(Some(snap)) = backup(
        &repo,
        Source::Paths(&paths),
        &BackupOptions::default(),
        &NoProgress,
    )
    .map(|s| s.snapshot_id.and_then(|id| id.parse::<Id>().ok())) else {
        eprintln!("restore_plan bench skipped: backup failed");
        return;
    };
    let opts = RestoreOptions {
        dry_run: true,
        ..Default::default()
    };
    let target = dir.path().join("target");
    let mut g = c.benchmark_group("restore_plan");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(FILES as u64));
    g.bench_function("files_20k", |b| {
        b.iter(|| restore(&repo, &snap, &target, &opts, &NoProgress).map(|s| s.files_restored))
    });
    g.finish();
}

criterion_group!(benches, chunker, hash, codec, pack, index, restore_plan);
criterion_main!(benches);
