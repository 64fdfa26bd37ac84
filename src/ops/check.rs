//! Check (format-spec §5–§8 verification rules): the index agrees with the packs, every blob a
//! snapshot references is indexed, and with `read_data` every blob decrypts and matches its id.
//! Damage is reported by object, then traced to the snapshots and files it affects.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::backend::{Kind, RequestStats};
use crate::error::Result;
use crate::format::pack::{self, PackEntry, TRAILER_LEN};
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::Repository;

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    pub read_data: bool,
    /// Read only this fraction (0–1] of the packs (with `read_data`).
    pub read_data_subset: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Affected {
    pub snapshot: String,
    pub path: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub message_type: &'static str,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub damaged_packs: Vec<String>,
    pub missing_blobs: Vec<String>,
    pub affected: Vec<Affected>,
    pub snapshots_checked: u64,
    pub trees_checked: u64,
    pub packs_checked: u64,
    pub packs_read: u64,
    pub blobs_verified: u64,
    pub bytes_read: u64,
    pub requests: RequestStats,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Read a pack's header with one ranged read of its tail (a second when the header is large).
pub fn read_pack_header(repo: &Repository, name: &str, size: u64) -> Result<Vec<PackEntry>> {
    let guess = size.min(256 << 10);
    let tail = repo
        .backend()
        .get_range(Kind::Pack, name, size - guess, guess)?;
    let trailer = &tail[tail.len().saturating_sub(TRAILER_LEN)..];
    let header_len = u64::from(pack::parse_trailer(trailer, size)?);
    let sealed = if header_len + TRAILER_LEN as u64 <= guess {
        let end = tail.len() - TRAILER_LEN;
        tail[end - header_len as usize..end].to_vec()
    } else {
        repo.backend().get_range(
            Kind::Pack,
            name,
            size - TRAILER_LEN as u64 - header_len,
            header_len,
        )?
    };
    pack::open_header(&sealed, size, &repo.codec().keys().meta)
}

pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let before = repo.request_stats();
    let mut r = CheckReport {
        message_type: "summary",
        ..Default::default()
    };
    let stored: HashMap<String, u64> = repo.backend().list(Kind::Pack)?.into_iter().collect();

    // 1. The index as the repository states it (ignoring superseded objects).
    let mut indexed: HashMap<Id, Vec<PackEntry>> = HashMap::new();
    let mut superseded = HashSet::new();
    let mut objects = Vec::new();
    for (name, _) in repo.backend().list(Kind::Index)? {
        match repo.load_index_object(&name) {
            Ok(obj) => {
                superseded.extend(obj.supersedes.iter().map(Id::to_hex));
                objects.push((name, obj));
            }
            Err(e) => r.errors.push(format!("index {name}: {e}")),
        }
    }
    for (name, obj) in objects {
        if superseded.contains(&name) {
            continue;
        }
        for p in obj.packs {
            indexed.entry(p.pack).or_default().extend(p.entries);
        }
    }
    let blob_packs: HashMap<Id, Vec<Id>> =
        indexed
            .iter()
            .fold(HashMap::new(), |mut m, (pack, entries)| {
                for e in entries {
                    m.entry(e.id).or_default().push(*pack);
                }
                m
            });

    // 2. Every indexed pack exists and its header agrees with the index.
    // Whole packs that cannot be used, and single damaged blobs (pack, blob) found by reading.
    let mut damaged: BTreeSet<Id> = BTreeSet::new();
    let mut damaged_blobs: HashSet<(Id, Id)> = HashSet::new();
    progress.set_total(indexed.len() as u64, 0);
    for (pack, entries) in &indexed {
        let name = pack.to_hex();
        r.packs_checked += 1;
        progress.add_item(1);
        let Some(&size) = stored.get(&name) else {
            r.errors
                .push(format!("pack {name} is listed in the index but missing"));
            damaged.insert(*pack);
            continue;
        };
        match read_pack_header(repo, &name, size) {
            Ok(header) => {
                let a: BTreeSet<_> = header
                    .iter()
                    .map(|e| (e.id, e.offset, e.length, e.kind as u8))
                    .collect();
                let b: BTreeSet<_> = entries
                    .iter()
                    .map(|e| (e.id, e.offset, e.length, e.kind as u8))
                    .collect();
                if a != b {
                    r.errors
                        .push(format!("pack {name}: header does not match the index"));
                    damaged.insert(*pack);
                }
            }
            Err(e) => {
                r.errors.push(format!("pack {name}: {e}"));
                damaged.insert(*pack);
            }
        }
    }
    for name in stored.keys() {
        if name
            .parse::<Id>()
            .map_or(true, |id| !indexed.contains_key(&id))
        {
            r.warnings.push(format!(
                "pack {name} is not indexed (left by an interrupted run; prune removes it)"
            ));
        }
    }

    // 3. With read_data: every (selected) pack is read whole and every blob verified, by one
    // worker per core (reading, decrypting, decompressing and hashing are all per pack).
    if opts.read_data {
        let fraction = opts.read_data_subset.unwrap_or(1.0).clamp(0.0, 1.0);
        let work: Vec<(&Id, &Vec<PackEntry>)> = indexed
            .iter()
            .filter(|(pack, _)| !damaged.contains(*pack) && selected(pack, fraction))
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(work.len())
            .max(1);
        let next = AtomicUsize::new(0);
        let results = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    while let Some(&(pack, entries)) =
                        work.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        let res = read_pack_data(repo, pack, entries, progress);
                        results
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((*pack, res));
                    }
                });
            }
        });
        for (pack, res) in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
            match res {
                Err(e) => {
                    r.errors.push(format!("pack {}: {e}", pack.to_hex()));
                    damaged.insert(pack);
                }
                Ok(v) => {
                    r.packs_read += 1;
                    r.bytes_read += v.bytes;
                    r.blobs_verified += v.verified;
                    r.errors.extend(v.errors);
                    damaged_blobs.extend(v.damaged_blobs.into_iter().map(|b| (pack, b)));
                }
            }
        }
    }

    // 4. Snapshots: every tree readable, every referenced blob indexed in an undamaged pack.
    let bad_blob = |id: &Id| {
        blob_packs.get(id).is_none_or(|packs| {
            packs
                .iter()
                .all(|p| damaged.contains(p) || damaged_blobs.contains(&(*p, *id)))
        })
    };
    let mut trees_seen = HashSet::new();
    for (name, _) in repo.backend().list(Kind::Snapshot)? {
        let Ok(sid) = name.parse::<Id>() else {
            continue;
        };
        let snap = match repo.load_snapshot(&sid) {
            Ok(s) => s,
            Err(e) => {
                r.errors.push(format!("snapshot {name}: {e}"));
                continue;
            }
        };
        r.snapshots_checked += 1;
        let mut stack = vec![(snap.tree, String::from("/"))];
        while let Some((tree_id, path)) = stack.pop() {
            let first_visit = trees_seen.insert(tree_id);
            if bad_blob(&tree_id) {
                r.errors.push(format!(
                    "snapshot {}: tree {tree_id} of {path} is missing or damaged",
                    sid.short()
                ));
                r.missing_blobs.push(tree_id.to_hex());
                r.affected.push(Affected {
                    snapshot: sid.short(),
                    path: path.clone(),
                });
                continue;
            }
            let tree = match repo.load_tree(&tree_id) {
                Ok(t) => t,
                Err(e) => {
                    r.errors
                        .push(format!("snapshot {}: {path}: {e}", sid.short()));
                    r.affected.push(Affected {
                        snapshot: sid.short(),
                        path: path.clone(),
                    });
                    continue;
                }
            };
            if first_visit {
                r.trees_checked += 1;
            }
            for node in &tree.nodes {
                let p = format!("{}/{}", path.trim_end_matches('/'), node.name_lossy());
                match node.kind {
                    NodeKind::Dir => match node.subtree {
                        Some(sub) => stack.push((sub, p)),
                        None => r.errors.push(format!(
                            "snapshot {}: {p}: folder without a tree",
                            sid.short()
                        )),
                    },
                    NodeKind::File => {
                        let missing: Vec<&Id> =
                            node.content.iter().filter(|id| bad_blob(id)).collect();
                        if !missing.is_empty() {
                            r.missing_blobs.extend(missing.iter().map(|id| id.to_hex()));
                            r.affected.push(Affected {
                                snapshot: sid.short(),
                                path: p,
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for a in &r.affected {
        r.errors.push(format!(
            "snapshot {}: {} is damaged (data missing or corrupt)",
            a.snapshot, a.path
        ));
    }
    r.missing_blobs.sort();
    r.missing_blobs.dedup();
    damaged.extend(damaged_blobs.iter().map(|(p, _)| *p));
    r.damaged_packs = damaged.iter().map(Id::to_hex).collect();
    r.requests = repo.request_stats().since(&before);
    Ok(r)
}

/// What reading one pack whole found.
struct PackRead {
    bytes: u64,
    verified: u64,
    errors: Vec<String>,
    damaged_blobs: Vec<Id>,
}

/// Read a pack whole, check it against its name and verify every blob the index lists in it.
fn read_pack_data(
    repo: &Repository,
    pack: &Id,
    entries: &[PackEntry],
    progress: &dyn Progress,
) -> Result<PackRead> {
    let name = pack.to_hex();
    let bytes = repo.backend().get(Kind::Pack, &name)?;
    progress.add_bytes(bytes.len() as u64);
    let mut out = PackRead {
        bytes: bytes.len() as u64,
        verified: 0,
        errors: Vec::new(),
        damaged_blobs: Vec::new(),
    };
    if Id::of_object(&bytes) != *pack {
        // Which blobs suffer is decided blob by blob below; the header was verified above.
        out.errors.push(format!(
            "pack {name}: content does not match its name (damaged)"
        ));
    }
    for e in entries {
        let sealed =
            bytes.get(e.offset as usize..(e.offset as usize).saturating_add(e.length as usize));
        if sealed.is_some_and(|s| repo.codec().open(e.kind, &e.id, s).is_ok()) {
            out.verified += 1;
        } else {
            out.errors
                .push(format!("pack {name}: blob {} is damaged", e.id));
            out.damaged_blobs.push(e.id);
        }
    }
    Ok(out)
}

/// A stable, evenly spread choice of packs for `--read-data-subset`.
fn selected(pack: &Id, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    let v = u32::from_le_bytes([pack.0[0], pack.0[1], pack.0[2], pack.0[3]]);
    (f64::from(v) / f64::from(u32::MAX)) < fraction
}
