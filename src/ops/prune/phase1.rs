//! Prune phase one (gc.md §4.3): from the live set, condemn packs without live blobs, repack
//! packs mostly unused, condemn orphans, publish index objects that no longer list condemned
//! packs (superseding the ones they replace), and record it all in a plan. Nothing is deleted.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::mark::Marker;
use super::{alive, list_sessions, IndexCatalog, PruneOptions, PruneReport};
use crate::backend::{Kind, Temperature};
use crate::codec::SealedBlob;
use crate::error::Result;
use crate::format::gc::Plan;
use crate::format::index::IndexPack;
use crate::format::pack::PackEntry;
use crate::id::{BlobKind, Id};
use crate::repo::pieces::read_in_pieces;
use crate::repo::session::unix_now;
use crate::repo::writer::WriterOptions;
use crate::repo::Repository;

/// Blob entries per rewritten index object (~22 MiB sealed).
const MAX_ENTRIES_PER_OBJECT: usize = 500_000;

struct Candidate {
    pack: IndexPack,
    object: String,
    size: u64,
    unused: u64,
    /// Whether the pack holds trees (packs hold one kind of blob).
    trees: bool,
}

/// Phase one; returns the plan written (None when there was nothing to do or on a dry run).
pub(super) fn run(
    repo: &Repository,
    marker: &Marker<'_>,
    catalog: &IndexCatalog,
    pending: &[Plan],
    packs: &HashMap<String, u64>,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<Option<(String, Plan)>> {
    let in_plans: HashSet<Id> = pending.iter().flat_map(|p| p.condemned.clone()).collect();
    let old_in_plans: HashSet<Id> = pending.iter().flat_map(|p| p.old_index.clone()).collect();
    report.packs_total = packs.len() as u64;
    report.bytes_total = packs.values().sum();
    let mut condemned = BTreeSet::new();
    let mut affected = BTreeSet::new();
    let mut candidates = Vec::new();
    let mut seen = HashSet::new();
    // Live and dead bytes of the packs that stay, for the repository-wide unused budget.
    let (mut live_total, mut unused_total) = (0u64, 0u64);
    for name in catalog.current() {
        for p in repo.load_index_object(name)?.packs {
            let Some(&size) = packs.get(&p.pack.to_hex()) else {
                report
                    .warnings
                    .push(format!("pack {} is indexed but missing", p.pack));
                continue;
            };
            if !seen.insert(p.pack) {
                continue;
            }
            let (mut live, mut dead) = (0u64, 0u64);
            for e in &p.entries {
                if marker.live.contains(&e.id)? {
                    live += u64::from(e.length);
                } else {
                    dead += u64::from(e.length);
                }
            }
            if live == 0 {
                condemned.insert(p.pack);
                affected.insert(name.clone());
                report.packs_unused += 1;
                report.bytes_unused += size;
            } else {
                // Header bytes do not count: a repacked pack has a header too.
                live_total += live;
                unused_total += dead;
                if dead > 0 {
                    let trees = p.entries.iter().any(|e| e.kind == BlobKind::Tree);
                    candidates.push(Candidate {
                        pack: p,
                        object: name.clone(),
                        size,
                        unused: dead,
                        trees,
                    });
                }
            }
        }
    }
    // Repack tree packs with any dead tree, then the most wasteful data packs until at most
    // `max_unused` of what stays is unused. A repack rewrites a whole pack, so a share per
    // data pack (a 16 MiB copy to free 1 MiB) would rewrite most of the repository after a
    // change spread through large files. Tree packs are small, and every client caches and
    // reads them (ls, mount, check, prune's mark), so none keeps dead trees (as in restic).
    candidates.sort_by(|a, b| (b.trees, b.unused * a.size).cmp(&(a.trees, a.unused * b.size)));
    let allowed = unused_allowance(live_total, opts.max_unused);
    let mut budget = opts.max_repack_size.unwrap_or(u64::MAX);
    candidates.retain(|c| {
        let repack = (c.trees || unused_total > allowed) && c.size <= budget;
        if repack {
            budget -= c.size;
            unused_total -= c.unused;
        }
        repack
    });
    for (name, &size) in packs {
        let Ok(id) = name.parse::<Id>() else { continue };
        if !catalog.current_packs.contains(&id) && !in_plans.contains(&id) && condemned.insert(id) {
            report.packs_orphaned += 1;
            report.bytes_orphaned += size;
        }
    }
    let leftovers: Vec<Id> = catalog
        .superseded_present()
        .into_iter()
        .filter_map(|n| n.parse::<Id>().ok())
        .filter(|id| !old_in_plans.contains(id))
        .collect();
    report.packs_repacked = candidates.len() as u64;
    report.bytes_repacked = candidates.iter().map(|c| c.size).sum();
    if opts.dry_run || (condemned.is_empty() && candidates.is_empty() && leftovers.is_empty()) {
        return Ok(None);
    }
    let kept = held_by_staying_packs(repo, catalog, packs, &candidates, &condemned)?;
    let repacked = repack(repo, marker, &candidates, &kept, report)?;
    // A damaged pack stays: count what was actually repacked (a dry run counts the candidates).
    candidates.retain(|c| repacked.contains(&c.pack.pack));
    report.packs_repacked = candidates.len() as u64;
    report.bytes_repacked = candidates.iter().map(|c| c.size).sum();
    for c in &candidates {
        condemned.insert(c.pack.pack);
        affected.insert(c.object.clone());
    }
    let new_index = rewrite(repo, catalog, &affected, &condemned)?;
    report.index_written += new_index.len() as u64;
    repo.rebuild_local_index()?;
    // Sessions alive now, after the new index is visible: phase two waits for them.
    let sessions = alive(&list_sessions(repo)?, opts.stale_after);
    let mut old_index: Vec<Id> = affected.iter().filter_map(|n| n.parse().ok()).collect();
    old_index.extend(leftovers);
    let plan = Plan {
        created_s: unix_now(),
        condemned: condemned.into_iter().collect(),
        old_index,
        new_index,
        sessions,
    };
    let bytes = plan.encode(&repo.codec().keys().meta);
    let name = Id::of_object(&bytes).to_hex();
    repo.backend()
        .put(Kind::Plan, &name, &bytes, Temperature::Hot)?;
    report.plan = Some(name.clone());
    Ok(Some((name, plan)))
}

/// Unused bytes that may stay beside `live` bytes so that they are at most `share` (0–1) of
/// the total: unused ≤ share × (live + unused).
fn unused_allowance(live: u64, share: f64) -> u64 {
    if share >= 1.0 {
        return u64::MAX;
    }
    (live as f64 * share / (1.0 - share)) as u64
}

/// The blobs of `candidates` that a pack which stays also holds.
fn held_by_staying_packs(
    repo: &Repository,
    catalog: &IndexCatalog,
    packs: &HashMap<String, u64>,
    candidates: &[Candidate],
    condemned: &BTreeSet<Id>,
) -> Result<HashSet<(BlobKind, Id)>> {
    let mut held = HashSet::new();
    if candidates.is_empty() {
        return Ok(held);
    }
    let moving: HashSet<Id> = candidates.iter().map(|c| c.pack.pack).collect();
    let wanted: HashSet<(BlobKind, Id)> = candidates
        .iter()
        .flat_map(|c| c.pack.entries.iter().map(|e| (e.kind, e.id)))
        .collect();
    for name in catalog.current() {
        for p in repo.load_index_object(name)?.packs {
            let stays = !moving.contains(&p.pack)
                && !condemned.contains(&p.pack)
                && packs.contains_key(&p.pack.to_hex());
            if stays {
                held.extend(
                    p.entries
                        .iter()
                        .map(|e| (e.kind, e.id))
                        .filter(|k| wanted.contains(k)),
                );
            }
        }
    }
    Ok(held)
}

/// Copy the live blobs of `candidates` into new packs (sealed bytes are moved as they are: a
/// blob's seal binds its kind and id, not its pack). Returns the packs whose copy succeeded.
///
/// Every live blob is opened before it is copied, so a damaged blob is never copied. A pack
/// with a live blob that does not open, or whose bytes do not match its name, is not returned
/// and so stays indexed: the blobs already copied from it are then harmless duplicates, and
/// nothing that was intact is lost.
///
/// A blob that a staying pack also holds (`held_elsewhere`) is copied only once its own pack
/// is known to go, since that other copy is not verified here. A pack kept for a damaged blob
/// thus copies none of them: otherwise every run would copy its intact blobs again (the first
/// run's copies are such staying packs), one more duplicate each time.
fn repack(
    repo: &Repository,
    marker: &Marker<'_>,
    candidates: &[Candidate],
    held_elsewhere: &HashSet<(BlobKind, Id)>,
    report: &mut PruneReport,
) -> Result<HashSet<Id>> {
    let mut done = HashSet::new();
    if candidates.is_empty() {
        return Ok(done);
    }
    let writer = repo.writer(WriterOptions::default());
    // By kind as well as id: a data chunk and a tree may share an id, and each is stored (and
    // must be copied) as its own kind.
    let mut copied: HashSet<(BlobKind, Id)> = HashSet::new();
    // The seal binds kind and id: a blob that authenticates is the blob the index names,
    // intact. It is copied as it is, so it need not be decompressed and hashed.
    let intact = |e: &PackEntry, s: &[u8]| repo.codec().authenticates(e.kind, &e.id, s);
    let add = |e: &PackEntry, sealed: &[u8], copied: &mut HashSet<_>| -> Result<()> {
        writer.add_sealed(SealedBlob {
            kind: e.kind,
            id: e.id,
            sealed: sealed.to_vec(),
            raw_length: e.raw_length,
        })?;
        copied.insert((e.kind, e.id));
        Ok(())
    };
    for c in candidates {
        let name = c.pack.pack.to_hex();
        let mut live = Vec::new();
        for e in &c.pack.entries {
            if marker.live.contains(&e.id)? {
                live.push(*e);
            }
        }
        let mut damaged = 0u64;
        let mut deferred = Vec::new();
        let mut copy = |e: &PackEntry, sealed: Option<&[u8]>| -> Result<()> {
            let key = (e.kind, e.id);
            if copied.contains(&key) {
                return Ok(());
            }
            match sealed.filter(|s| intact(e, s)) {
                Some(_) if held_elsewhere.contains(&key) => deferred.push(*e),
                Some(s) => add(e, s, &mut copied)?,
                None => damaged += 1,
            }
            Ok(())
        };
        let (hash, bytes) = if repo.backend().cheap_ranges() {
            // A local disk: a piece and a blob in memory at a time, not the pack.
            let hash = read_in_pieces(repo, &name, c.size, &live, |e, s| copy(e, s.map(|s| &*s)))?;
            (hash, None)
        } else {
            // One request per pack (every request is billed). The name is checked first, so
            // a damaged pack is not copied from at all.
            let bytes = repo.backend().get(Kind::Pack, &name)?;
            let hash = Id::of_object(&bytes);
            if hash == c.pack.pack {
                for e in &live {
                    copy(e, blob_bytes(&bytes, e))?;
                }
            }
            (hash, Some(bytes))
        };
        if damaged == 0 && hash == c.pack.pack {
            // The pack goes: copy what was deferred, read again on a local disk.
            for e in &deferred {
                let sealed = match &bytes {
                    Some(b) => blob_bytes(b, e).map(<[u8]>::to_vec),
                    None => {
                        let len = u64::from(e.length);
                        Some(
                            repo.backend()
                                .get_range(Kind::Pack, &name, e.offset.into(), len)?,
                        )
                    }
                };
                match sealed.filter(|s| intact(e, s)) {
                    Some(s) if !copied.contains(&(e.kind, e.id)) => add(e, &s, &mut copied)?,
                    Some(_) => {}
                    // Changed since it was read: the pack stays, as for any damaged blob.
                    None => damaged += 1,
                }
            }
        }
        if damaged > 0 {
            report.warnings.push(format!(
                "pack {name}: {damaged} live blob(s) damaged; not copied, pack kept (run check)"
            ));
        } else if hash != c.pack.pack {
            report.warnings.push(format!(
                "pack {name} does not match its name (damaged); not condemned (run check)"
            ));
        } else {
            done.insert(c.pack.pack);
        }
    }
    let stats = writer.finish()?;
    report.bytes_repack_written += stats.bytes;
    Ok(done)
}

/// The sealed bytes of `e` in a whole pack, if the pack is long enough.
fn blob_bytes<'a>(pack: &'a [u8], e: &PackEntry) -> Option<&'a [u8]> {
    let at = e.offset as usize;
    pack.get(at..at.saturating_add(e.length as usize))
}

/// Write index objects listing the packs of `affected` minus `condemned`; each supersedes the
/// objects whose packs it carries and, transitively, what those superseded.
fn rewrite(
    repo: &Repository,
    catalog: &IndexCatalog,
    affected: &BTreeSet<String>,
    condemned: &BTreeSet<Id>,
) -> Result<Vec<Id>> {
    let mut out = Vec::new();
    let mut packs = Vec::new();
    let mut sup = BTreeSet::new();
    let mut entries = 0usize;
    let mut it = affected.iter().peekable();
    while let Some(name) = it.next() {
        sup.extend(name.parse::<Id>().ok());
        sup.extend(
            catalog
                .supersedes_of(name)
                .iter()
                .filter(|s| catalog.objects.contains_key(&s.to_hex())),
        );
        for p in repo.load_index_object(name)?.packs {
            if !condemned.contains(&p.pack) {
                entries += p.entries.len();
                packs.push(p);
            }
        }
        if entries >= MAX_ENTRIES_PER_OBJECT || it.peek().is_none() {
            let written = repo.write_index(
                std::mem::take(&mut packs),
                std::mem::take(&mut sup).into_iter().collect(),
            )?;
            out.push(
                written
                    .parse::<Id>()
                    .map_err(|e| crate::Error::Invalid(e.to_string()))?,
            );
            entries = 0;
        }
    }
    Ok(out)
}
