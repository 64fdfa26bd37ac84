//! Prune phase two (gc.md §4.4): rescue packs that snapshots written during a prune still need
//! (they go back into the index), then delete a plan's condemned packs that no current index
//! object lists, its old index objects, and finally the plan itself.

use std::collections::{BTreeSet, HashMap};

use super::mark::Marker;
use super::{IndexCatalog, PruneOptions, PruneReport};
use crate::backend::Kind;
use crate::error::Result;
use crate::format::gc::Plan;
use crate::format::index::IndexPack;
use crate::ops::check::read_pack_header;
use crate::repo::Repository;

/// Index again every pack holding a marked blob that no current index object lists.
pub(super) fn rescue(
    repo: &Repository,
    marker: &mut Marker<'_>,
    report: &mut PruneReport,
) -> Result<()> {
    if marker.missing.is_empty() {
        return Ok(());
    }
    repo.sync_index()?;
    let mut need = Vec::new();
    for id in &marker.missing {
        if repo.lookup(id)?.is_none() {
            need.push(*id);
        }
    }
    marker.missing.clear();
    if need.is_empty() {
        return Ok(());
    }
    marker.reset_fallback();
    let fallback = marker.fallback()?;
    let mut packs = BTreeSet::new();
    for id in &need {
        match fallback.get(id) {
            Some(loc) => {
                packs.insert(loc.pack);
            }
            None => report.warnings.push(format!(
                "blob {id} is referenced but no index lists it (run check)"
            )),
        }
    }
    let mut rescued = Vec::new();
    for pack in packs {
        let name = pack.to_hex();
        match repo.backend().stat(Kind::Pack, &name)? {
            Some(size) => rescued.push(IndexPack {
                pack,
                entries: read_pack_header(repo, &name, size)?,
            }),
            None => report.warnings.push(format!(
                "pack {name} is needed by a snapshot but gone (run check)"
            )),
        }
    }
    if !rescued.is_empty() {
        tracing::info!("rescuing {} pack(s) needed by new snapshots", rescued.len());
        report.packs_rescued += rescued.len() as u64;
        repo.write_index(rescued, vec![])?;
        report.index_written += 1;
    }
    Ok(())
}

/// Phase two of one plan whose grace period and sessions are over (after `rescue`).
pub(super) fn complete(
    repo: &Repository,
    name: &str,
    plan: &Plan,
    catalog: &mut IndexCatalog,
    packs: &mut HashMap<String, u64>,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<()> {
    let mut doomed = Vec::new();
    for pack in &plan.condemned {
        let hex = pack.to_hex();
        if catalog.current_packs.contains(pack) {
            continue; // rescued, or indexed by the run that uploaded it
        }
        if let Some(size) = packs.get(&hex) {
            report.packs_deleted += 1;
            report.bytes_freed += size;
        }
        doomed.push(hex);
    }
    let old: Vec<String> = plan
        .old_index
        .iter()
        .map(|id| id.to_hex())
        .filter(|n| !catalog.is_current(n))
        .collect();
    report.index_deleted += old.len() as u64;
    report.plans_completed += 1;
    if opts.dry_run {
        return Ok(());
    }
    // Packs first, then the index objects that described them, then the plan: a crash at any
    // point leaves the plan, and running it again finishes the job.
    repo.backend().delete_many(Kind::Pack, &doomed)?;
    for name in &doomed {
        repo.cache().remove(Kind::Pack, name);
    }
    repo.backend().delete_many(Kind::Index, &old)?;
    repo.backend().delete(Kind::Plan, name)?;
    // What this run lists from now on (phase one) no longer includes what was just deleted.
    for hex in &doomed {
        packs.remove(hex);
    }
    for n in &old {
        catalog.objects.remove(n);
    }
    Ok(())
}
