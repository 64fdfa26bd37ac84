//! Forget (format-spec §9.4): select snapshots, group them, apply the retention policy per
//! group (or take explicit ids) and delete the manifests of those not kept. Only snapshot
//! manifests are removed here; their data goes with `prune`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backend::Kind;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::ops::retention::{apply_policy, Policy, PROTECTED_TAG};
use crate::ops::snapshots::SnapshotFilter;
use crate::repo::Repository;

/// Which snapshot fields form a group (restic's `--group-by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<GroupBy> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "tags" | "tag" => g.tags = true,
                other => return Err(Error::Invalid(format!("unknown group-by field {other:?}"))),
            }
        }
        Ok(g)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    pub host: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

impl GroupBy {
    pub fn key(&self, s: &Snapshot) -> GroupKey {
        let mut tags = s.tags.clone();
        tags.sort();
        GroupKey {
            host: self.host.then(|| s.hostname.clone()),
            paths: self.paths.then(|| s.paths.clone()),
            tags: self.tags.then_some(tags),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    pub policy: Policy,
    pub group_by: GroupBy,
    pub filter: SnapshotFilter,
    /// Forget exactly these snapshots instead of applying a policy.
    pub ids: Vec<Id>,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SnapshotDecision {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub host: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupReport {
    pub group: GroupKey,
    pub snapshots: Vec<SnapshotDecision>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ForgetReport {
    pub message_type: &'static str,
    pub dry_run: bool,
    pub groups: Vec<GroupReport>,
    pub kept: u64,
    pub removed: u64,
}

fn describe(id: &Id, s: &Snapshot, keep: bool, reasons: Vec<String>) -> SnapshotDecision {
    SnapshotDecision {
        id: id.to_hex(),
        short_id: id.short(),
        time: s.time().to_string(),
        host: s.hostname.clone(),
        paths: s.paths.clone(),
        tags: s.tags.clone(),
        keep,
        reasons,
    }
}

/// Decide (and unless `dry_run`, delete) which snapshots to forget.
pub fn forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    if opts.ids.is_empty() && opts.policy.is_empty() {
        return Err(Error::Invalid(
            "no policy given: name snapshots or use --keep-* options".into(),
        ));
    }
    let all = repo.list_snapshots()?;
    let mut groups: BTreeMap<GroupKey, Vec<(Id, Snapshot)>> = BTreeMap::new();
    for (id, s) in all {
        let selected = if opts.ids.is_empty() {
            opts.filter.matches(&s)
        } else {
            opts.ids.contains(&id)
        };
        if selected {
            groups
                .entry(opts.group_by.key(&s))
                .or_default()
                .push((id, s));
        }
    }
    let now = jiff::Timestamp::now();
    let mut report = ForgetReport {
        message_type: "forget",
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut doomed = Vec::new();
    for (group, members) in groups {
        let decisions: Vec<(bool, Vec<String>, &Id, &Snapshot)> = if opts.ids.is_empty() {
            let pos: BTreeMap<Id, usize> = members
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (*id, i))
                .collect();
            apply_policy(&members, &opts.policy, now)
                .into_iter()
                .filter_map(|d| {
                    let (id, s) = members.get(*pos.get(&d.id)?)?;
                    Some((d.keep, d.reasons, id, s))
                })
                .collect()
        } else {
            members
                .iter()
                .rev()
                .map(|(id, s)| match s.has_tag(PROTECTED_TAG) {
                    true => (true, vec!["protected".to_string()], id, s),
                    false => (false, vec!["named".to_string()], id, s),
                })
                .collect()
        };
        let mut snapshots = Vec::new();
        for (keep, reasons, id, s) in decisions {
            if keep {
                report.kept += 1;
            } else {
                report.removed += 1;
                doomed.push(id.to_hex());
            }
            snapshots.push(describe(id, s, keep, reasons));
        }
        report.groups.push(GroupReport { group, snapshots });
    }
    if !opts.dry_run && !doomed.is_empty() {
        repo.backend().delete_many(Kind::Snapshot, &doomed)?;
    }
    Ok(report)
}

/// How `tag` changes a snapshot's tags.
#[derive(Clone, Debug, Default)]
pub struct TagChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    /// Replace all tags (applied before add/remove) when Some.
    pub set: Option<Vec<String>>,
}

/// Rewrite a snapshot manifest with changed tags: the new manifest (with `original` pointing at
/// the first one) is written before the old one is deleted, so a crash leaves at worst both.
/// Returns the new id, or None when the tags did not change.
pub fn retag(repo: &Repository, id: &Id, change: &TagChange) -> Result<Option<Id>> {
    let old = repo.load_snapshot(id)?;
    let mut tags = change.set.clone().unwrap_or_else(|| old.tags.clone());
    tags.retain(|t| !change.remove.contains(t));
    for t in &change.add {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    if tags == old.tags {
        return Ok(None);
    }
    let mut new = old.clone();
    new.tags = tags;
    new.original = Some(old.original.unwrap_or(*id));
    let new_id = repo.save_snapshot(&new)?;
    if new_id != *id {
        repo.backend().delete(Kind::Snapshot, &id.to_hex())?;
    }
    Ok(Some(new_id))
}
