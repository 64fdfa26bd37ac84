//! Prune (format-spec §9.4, `format-spec/gc.md`): two-phase garbage collection that never
//! blocks backups. One run marks live blobs, rescues packs that racing snapshots still need,
//! completes older plans whose grace period and sessions are over (phase two), then condemns
//! unused packs in a new plan (phase one). Plans are the only state; every step is idempotent.
//! A run also removes the temporary files killed writers left in a local repository.

mod catalog;
pub mod live;
mod mark;
mod phase1;
mod phase2;

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::backend::{Kind, RequestStats};
use crate::error::{Error, Result};
use crate::format::gc::{parse_session_name, Plan};
use crate::repo::session::unix_now;
use crate::repo::Repository;

pub(crate) use catalog::IndexCatalog;

#[derive(Clone, Debug)]
pub struct PruneOptions {
    pub dry_run: bool,
    /// Repack the most wasteful packs until at most this share (0–1) of the repository is unused.
    pub max_unused: f64,
    /// Repack at most this many bytes of old packs per run.
    pub max_repack_size: Option<u64>,
    /// A plan is completed only once it is this old.
    pub grace: Duration,
    /// A session whose heartbeat is older than this counts as ended; a temporary file this old
    /// (local repositories) was left by a killed writer and is removed.
    pub stale_after: Duration,
    /// Snapshots to treat as gone (a `forget --dry-run` preview passes the ones it would remove).
    pub assume_forgotten: Vec<crate::id::Id>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            max_unused: 0.05,
            max_repack_size: None,
            grace: Duration::from_secs(3600),
            stale_after: Duration::from_secs(2 * 3600),
            assume_forgotten: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub message_type: &'static str,
    pub dry_run: bool,
    pub snapshots: u64,
    pub trees_walked: u64,
    pub blobs_live: u64,
    pub packs_total: u64,
    pub bytes_total: u64,
    /// Phase one: packs condemned because no live blob is left in them.
    pub packs_unused: u64,
    pub bytes_unused: u64,
    /// Phase one: partly used packs whose live blobs were copied into new packs.
    pub packs_repacked: u64,
    pub bytes_repacked: u64,
    pub bytes_repack_written: u64,
    /// Phase one: packs no index object lists (left by interrupted runs).
    pub packs_orphaned: u64,
    pub bytes_orphaned: u64,
    /// The plan written by this run, if any.
    pub plan: Option<String>,
    /// Phase two: plans completed and the space they freed.
    pub plans_completed: u64,
    pub packs_deleted: u64,
    pub bytes_freed: u64,
    pub index_deleted: u64,
    /// Packs put back into the index because a snapshot written during a prune needs them.
    pub packs_rescued: u64,
    /// Plans not completed yet, with the reason.
    pub plans_waiting: Vec<String>,
    pub index_written: u64,
    /// Temporary files of killed writers (local repositories) older than `stale_after`,
    /// removed (on a dry run: that would be).
    pub temp_files_removed: u64,
    pub temp_bytes_removed: u64,
    pub warnings: Vec<String>,
    pub requests: RequestStats,
}

/// Session ids with their latest heartbeat (unix seconds).
pub(crate) fn list_sessions(repo: &Repository) -> Result<HashMap<String, i64>> {
    let mut out: HashMap<String, i64> = HashMap::new();
    for (name, _) in repo.backend().list(Kind::Session)? {
        if let Some((id, hb)) = parse_session_name(&name) {
            let e = out.entry(id.to_string()).or_insert(hb);
            *e = (*e).max(hb);
        }
    }
    Ok(out)
}

/// Ids of sessions whose heartbeat is recent enough to count as running.
pub(crate) fn alive(sessions: &HashMap<String, i64>, stale_after: Duration) -> Vec<String> {
    let cutoff = unix_now().saturating_sub(stale_after.as_secs() as i64);
    let mut v: Vec<String> = sessions
        .iter()
        .filter(|(_, hb)| **hb >= cutoff)
        .map(|(id, _)| id.clone())
        .collect();
    v.sort();
    v
}

/// Every plan in the repository. An unreadable plan stops the prune (its packs are unknown).
pub(crate) fn load_plans(repo: &Repository) -> Result<Vec<(String, Plan)>> {
    let mut out = Vec::new();
    for (name, _) in repo.backend().list(Kind::Plan)? {
        let bytes = match repo.backend().get(Kind::Plan, &name) {
            Err(e) if e.is_not_found() => continue,
            other => other?,
        };
        let plan = Plan::decode(&bytes, &repo.codec().keys().meta)
            .map_err(|e| Error::damaged("plan", name.clone(), e))?;
        out.push((name, plan));
    }
    out.sort_by_key(|(n, p)| (p.created_s, n.clone()));
    Ok(out)
}

/// Why a plan cannot be completed yet, or None when it can.
pub(crate) fn waiting_for(
    plan: &Plan,
    sessions: &HashMap<String, i64>,
    opts: &PruneOptions,
) -> Option<String> {
    let age = unix_now().saturating_sub(plan.created_s);
    if age < opts.grace.as_secs() as i64 {
        return Some(format!(
            "grace period: {age} s of {} s",
            opts.grace.as_secs()
        ));
    }
    let running = alive(sessions, opts.stale_after);
    let busy: Vec<&String> = plan
        .sessions
        .iter()
        .filter(|s| running.contains(s))
        .collect();
    if busy.is_empty() {
        None
    } else {
        Some(format!("{} backup session(s) still running", busy.len()))
    }
}

/// Run prune: phase two for old plans whose conditions hold, then phase one. With a zero grace
/// period and no running backups, the new plan is completed in the same run.
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let before = repo.request_stats();
    let mut report = PruneReport {
        message_type: "prune",
        dry_run: opts.dry_run,
        ..Default::default()
    };
    // First, so that a run stopped by damage further on still frees the space (a disk filled
    // up by killed backups). A file younger than `stale_after` may be a running backup's.
    match repo
        .backend()
        .remove_stale_temp(opts.stale_after, opts.dry_run)
    {
        Ok(t) => {
            report.temp_files_removed = t.files;
            report.temp_bytes_removed = t.bytes;
        }
        Err(e) => report
            .warnings
            .push(format!("stale temporary files not removed: {e}")),
    }
    // Order matters (gc.md §4): plans and sessions first, then packs, index and snapshots.
    let plans = load_plans(repo)?;
    let sessions = list_sessions(repo)?;
    let mut packs: HashMap<String, u64> = repo.backend().list(Kind::Pack)?.into_iter().collect();
    repo.sync_index()?;
    let catalog = IndexCatalog::load(repo)?;
    let mut marker = mark::Marker::new(repo)?;
    marker.marked.extend(opts.assume_forgotten.iter().copied());
    marker.mark_new_snapshots()?;
    if !opts.dry_run {
        phase2::rescue(repo, &mut marker, &mut report)?;
    }
    let mut catalog = if report.packs_rescued > 0 {
        IndexCatalog::load(repo)?
    } else {
        catalog
    };
    let mut pending = Vec::new();
    for (name, plan) in plans {
        match waiting_for(&plan, &sessions, opts) {
            None => phase2::complete(
                repo,
                &name,
                &plan,
                &mut catalog,
                &mut packs,
                opts,
                &mut report,
            )?,
            Some(why) => {
                report
                    .plans_waiting
                    .push(format!("{}: {why}", short(&name)));
                pending.push(plan);
            }
        }
    }
    let new_plan = phase1::run(repo, &marker, &catalog, &pending, &packs, opts, &mut report)?;
    report.snapshots = (marker.marked.len() - opts.assume_forgotten.len()) as u64;
    report.trees_walked = marker.trees;
    report.blobs_live = marker.live.len();
    if let (Some((name, plan)), false) = (new_plan, opts.dry_run) {
        let sessions = list_sessions(repo)?;
        match waiting_for(&plan, &sessions, opts) {
            None => {
                // Phase one changed the index under the universe: look ids up from now on.
                marker.universe_is_index = false;
                marker.mark_new_snapshots()?;
                phase2::rescue(repo, &mut marker, &mut report)?;
                let mut catalog = IndexCatalog::load(repo)?;
                let mut packs: HashMap<String, u64> =
                    repo.backend().list(Kind::Pack)?.into_iter().collect();
                phase2::complete(
                    repo,
                    &name,
                    &plan,
                    &mut catalog,
                    &mut packs,
                    opts,
                    &mut report,
                )?;
            }
            Some(why) => report
                .plans_waiting
                .push(format!("{}: {why}", short(&name))),
        }
    }
    report.requests = repo.request_stats().since(&before);
    Ok(report)
}

fn short(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}
