//! Check (format-spec §5–§8 verification rules): the index agrees with the packs, every blob a
//! snapshot references is indexed, and with `read_data` every blob decrypts and matches its id.
//! Damage is reported by object, then traced to the snapshots and files it affects.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde::Serialize;

use crate::backend::{Kind, RequestStats};
use crate::error::Result;
use crate::format::pack::{self, PackEntry, TRAILER_LEN};
use crate::format::tree::{NodeKind, MAX_TREE_DEPTH};
use crate::id::{BlobKind, Id};
use crate::progress::Progress;
use crate::repo::pieces::{lend_whole, read_in_pieces};
use crate::repo::Repository;

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    pub read_data: bool,
    /// Read only this fraction (0–1] of the packs (with `read_data`).
    pub read_data_subset: Option<f64>,
    /// Parallel requests for pack headers; reading whole packs uses at least one per core.
    pub connections: usize,
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
    let stored: BTreeMap<String, u64> = repo.backend().list(Kind::Pack)?.into_iter().collect();

    // 1. The index as the repository states it (ignoring superseded objects).
    // Ordered by pack, so the report comes out in the same order every time.
    let mut indexed: BTreeMap<Id, Vec<PackEntry>> = BTreeMap::new();
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
    // Two objects may list the same pack (e.g. two hosts that both indexed a pack left by a
    // killed run): one entry per blob, else the second copy of an entry reads as damage.
    for entries in indexed.values_mut() {
        entries.sort_unstable_by_key(|e| (e.offset, e.length, e.kind as u8, e.id));
        entries.dedup();
    }
    // 2. Every indexed pack exists and its header agrees with the index; 3. with read_data,
    // every (selected) pack is read whole instead and every blob verified. Packs are checked
    // in parallel (on S3 each is a round trip; read whole, each costs CPU) and the results
    // merged in pack order, so the report does not depend on the threads.
    let fraction = opts.read_data_subset.unwrap_or(1.0).clamp(0.0, 1.0);
    // Whole packs that cannot be used, and single damaged blobs (pack, blob) found by reading.
    let mut damaged: BTreeSet<Id> = BTreeSet::new();
    let mut damaged_blobs: HashSet<(Id, Id)> = HashSet::new();
    progress.set_total(indexed.len() as u64, 0);
    let packs: Vec<(&Id, &Vec<PackEntry>)> = indexed.iter().collect();
    let connections = opts.connections.max(1);
    // Each worker holds at most one pack, so memory stays bounded by workers × pack size.
    let workers = if opts.read_data {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(connections)
    } else {
        connections
    };
    let results = par_map(&packs, workers, |(pack, entries)| {
        let read_whole = opts.read_data && selected(pack, fraction);
        let c = check_pack(
            repo,
            pack,
            entries,
            stored.get(&pack.to_hex()).copied(),
            read_whole,
            progress,
        );
        progress.add_item(1);
        c
    });
    for ((pack, _), c) in packs.iter().zip(results) {
        r.packs_checked += 1;
        r.errors.extend(c.errors);
        if c.damaged {
            damaged.insert(**pack);
        }
        damaged_blobs.extend(c.damaged_blobs.iter().map(|b| (**pack, *b)));
        if let Some(n) = c.bytes_read {
            r.packs_read += 1;
            r.bytes_read += n;
        }
        r.blobs_verified += c.blobs_verified;
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

    // 4. Snapshots: every tree readable, every referenced blob indexed in an undamaged pack.
    // The usable blobs, by kind as well as id (a data chunk and a tree may share an id, and
    // each must be stored as its own kind to be readable). One set entry per blob, built once
    // the packs are checked: a map to every blob's packs took ~200 bytes per blob.
    let usable: HashSet<(BlobKind, Id)> = indexed
        .iter()
        .filter(|(pack, _)| !damaged.contains(*pack))
        .flat_map(|(pack, entries)| {
            entries
                .iter()
                .filter(|e| !damaged_blobs.contains(&(*pack, e.id)))
                .map(|e| (e.kind, e.id))
        })
        .collect();
    drop(packs);
    drop(indexed);
    let bad_blob = |kind: BlobKind, id: &Id| !usable.contains(&(kind, *id));
    let mut trees_seen = HashSet::new();
    // Trees found intact with everything below them. Snapshots share most of their trees, so
    // each of those is read and walked once; a tree with damage below is walked again for
    // every snapshot that holds it, so that each reports its own damaged paths.
    let mut intact: HashSet<Id> = HashSet::new();
    for (name, _) in repo.backend().list(Kind::Snapshot)? {
        let Ok(sid) = name.parse::<Id>() else {
            continue;
        };
        let snap = match repo.load_snapshot_uncached(&sid) {
            Ok(s) => s,
            Err(e) => {
                r.errors.push(format!("snapshot {name}: {e}"));
                continue;
            }
        };
        r.snapshots_checked += 1;
        // Depth first, each folder's Exit after its subfolders: `open` holds the folders
        // entered and not left, each with whether all below it was found intact so far.
        let mut steps = vec![Walk::Enter(snap.tree, String::from("/"), 0usize)];
        let mut open: Vec<(Id, bool)> = Vec::new();
        let affected = |r: &mut CheckReport, open: &mut Vec<(Id, bool)>, path: String| {
            r.affected.push(Affected {
                snapshot: sid.short(),
                path,
            });
            not_intact(open);
        };
        while let Some(step) = steps.pop() {
            let (tree_id, path, depth) = match step {
                Walk::Exit => {
                    if let Some((id, whole)) = open.pop() {
                        if whole {
                            intact.insert(id);
                        } else {
                            not_intact(&mut open);
                        }
                    }
                    continue;
                }
                Walk::Enter(tree_id, path, depth) => (tree_id, path, depth),
            };
            if intact.contains(&tree_id) {
                continue;
            }
            if depth > MAX_TREE_DEPTH {
                // Deeper than any backup writes: hostile, or (were ids not verified) a cycle.
                r.errors.push(format!(
                    "snapshot {}: {path}: folders nested deeper than {MAX_TREE_DEPTH} levels",
                    sid.short()
                ));
                break;
            }
            if bad_blob(BlobKind::Tree, &tree_id) {
                r.errors.push(format!(
                    "snapshot {}: tree {tree_id} of {path} is missing or damaged",
                    sid.short()
                ));
                r.missing_blobs.push(tree_id.to_hex());
                affected(&mut r, &mut open, path);
                continue;
            }
            let tree = match repo.load_tree(&tree_id) {
                Ok(t) => t,
                Err(e) => {
                    r.errors
                        .push(format!("snapshot {}: {path}: {e}", sid.short()));
                    affected(&mut r, &mut open, path);
                    continue;
                }
            };
            if trees_seen.insert(tree_id) {
                r.trees_checked += 1;
            }
            open.push((tree_id, true));
            steps.push(Walk::Exit);
            let child = |node: &crate::format::tree::Node| {
                format!("{}/{}", path.trim_end_matches('/'), node.name_lossy())
            };
            for node in &tree.nodes {
                match node.kind {
                    NodeKind::Dir => match node.subtree {
                        Some(sub) => steps.push(Walk::Enter(sub, child(node), depth + 1)),
                        None => {
                            r.errors.push(format!(
                                "snapshot {}: {}: folder without a tree",
                                sid.short(),
                                child(node)
                            ));
                            not_intact(&mut open);
                        }
                    },
                    NodeKind::File => {
                        let missing: Vec<&Id> = node
                            .content
                            .iter()
                            .filter(|id| bad_blob(BlobKind::Data, id))
                            .collect();
                        if !missing.is_empty() {
                            r.missing_blobs.extend(missing.iter().map(|id| id.to_hex()));
                            affected(&mut r, &mut open, child(node));
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

/// Damage below the innermost open folder of the walk: it, and so every folder above it, is not
/// intact.
fn not_intact(open: &mut [(Id, bool)]) {
    if let Some(folder) = open.last_mut() {
        folder.1 = false;
    }
}

/// A step of the snapshot walk in `check`.
enum Walk {
    /// Check a folder's tree (id, path, depth) and queue its subfolders.
    Enter(Id, String, usize),
    /// All below the innermost open folder was walked.
    Exit,
}

/// What checking one pack found.
#[derive(Default)]
struct PackCheck {
    errors: Vec<String>,
    /// The pack cannot be used at all (missing, unreadable, or its header disagrees).
    damaged: bool,
    /// Blobs that failed to open, when the pack was read whole.
    damaged_blobs: Vec<Id>,
    /// Bytes, when the pack was read whole.
    bytes_read: Option<u64>,
    blobs_verified: u64,
}

/// Check one indexed pack of `size` (None: missing): its header only, or with `read_whole`
/// the whole pack (one read, not two), its name hash and every blob.
fn check_pack(
    repo: &Repository,
    pack: &Id,
    entries: &[PackEntry],
    size: Option<u64>,
    read_whole: bool,
    progress: &dyn Progress,
) -> PackCheck {
    let mut c = PackCheck::default();
    let name = pack.to_hex();
    let Some(size) = size else {
        c.errors
            .push(format!("pack {name} is listed in the index but missing"));
        c.damaged = true;
        return c;
    };
    if !read_whole {
        let header = read_pack_header(repo, &name, size);
        c.damaged = !header_agrees(header, entries, &name, &mut c.errors);
        return c;
    }
    let (mut verified, mut bad, mut scratch) = (0u64, Vec::new(), Vec::new());
    // Opened where they lie in the read, after it was hashed: no copy per blob.
    let mut verify = |e: &PackEntry, sealed: Option<&mut [u8]>| -> Result<()> {
        let opened = sealed.map(|s| repo.codec().open_in_place(e.kind, &e.id, s, &mut scratch));
        if opened.is_some_and(|o| o.is_ok()) {
            verified += 1;
        } else {
            bad.push(e.id);
        }
        Ok(())
    };
    // Which blobs suffer is decided blob by blob; the header was verified before.
    let hash = if repo.backend().cheap_ranges() {
        // A local disk: the pack in pieces, so a thread holds megabytes rather than a pack.
        let header = read_pack_header(repo, &name, size);
        if !header_agrees(header, entries, &name, &mut c.errors) {
            c.damaged = true;
            return c;
        }
        read_in_pieces(repo, &name, size, entries, &mut verify)
    } else {
        // One request per pack: the header comes with the rest.
        repo.backend()
            .get(Kind::Pack, &name)
            .map(|mut bytes| {
                let hash = Id::of_object(&bytes);
                let header = pack::read_entries(&bytes, &repo.codec().keys().meta);
                if header_agrees(header, entries, &name, &mut c.errors) {
                    // Never fails: damage is recorded, not returned.
                    let _ = lend_whole(&mut bytes, entries, &mut verify);
                } else {
                    c.damaged = true;
                }
                hash
            })
            .map_err(crate::error::Error::from)
    };
    match hash {
        Err(e) => {
            c.errors.push(format!("pack {name}: {e}"));
            c.damaged = true;
        }
        Ok(_) if c.damaged => {}
        Ok(hash) => {
            c.bytes_read = Some(size);
            progress.add_bytes(size);
            if hash != *pack {
                c.errors.push(format!(
                    "pack {name}: content does not match its name (damaged)"
                ));
            }
            c.blobs_verified = verified;
            for id in &bad {
                c.errors.push(format!("pack {name}: blob {id} is damaged"));
            }
            c.damaged_blobs = bad;
        }
    }
    c
}

/// Whether a pack's own header lists exactly what the index says; records the error if not.
fn header_agrees(
    header: Result<Vec<PackEntry>>,
    entries: &[PackEntry],
    name: &str,
    errors: &mut Vec<String>,
) -> bool {
    match header {
        Ok(header) => {
            let key = |e: &PackEntry| (e.id, e.offset, e.length, e.kind as u8);
            let a: BTreeSet<_> = header.iter().map(key).collect();
            let b: BTreeSet<_> = entries.iter().map(key).collect();
            if a != b {
                errors.push(format!("pack {name}: header does not match the index"));
            }
            a == b
        }
        Err(e) => {
            errors.push(format!("pack {name}: {e}"));
            false
        }
    }
}

/// `f` over `items` on up to `workers` threads, results in item order. A worker takes the next
/// item only when done with its last, so no more than `workers` items are in flight.
fn par_map<T: Sync, R: Send + Sync>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<OnceLock<R>> = items.iter().map(|_| OnceLock::new()).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (Some(item), Some(slot)) = (items.get(i), slots.get(i)) else {
                    break;
                };
                let _ = slot.set(f(item));
            });
        }
    });
    slots.into_iter().filter_map(OnceLock::into_inner).collect()
}

/// A stable, evenly spread choice of packs for `--read-data-subset`.
fn selected(pack: &Id, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    let v = u32::from_le_bytes([pack.0[0], pack.0[1], pack.0[2], pack.0[3]]);
    (f64::from(v) / f64::from(u32::MAX)) < fraction
}
