//! forget, prune, cleanup, tag, protect, unprotect: parse the policy, call the library, print
//! one line per snapshot (or JSON) and a summary of what was freed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use backup_to_s3::id::Id;
use backup_to_s3::ops::forget::{self, ForgetOptions, ForgetReport, GroupBy, TagChange};
use backup_to_s3::ops::prune::{self, PruneOptions, PruneReport};
use backup_to_s3::ops::retention::{Policy, Within, PROTECTED_TAG};
use backup_to_s3::ops::snapshots::SnapshotFilter;
use backup_to_s3::repo::Repository;

use super::args::Global;
use super::commands::{human, print_json};
use super::prune_args::{ForgetArgs, PolicyArgs, PruneArgs, TagArgs};
use super::{exit, open_repo};

/// `open_repo` for a backup: the session object is written before the index is read.
pub(super) fn open_for_backup(g: &Global, dry_run: bool) -> Result<Repository> {
    if dry_run {
        return open_repo(g);
    }
    let backend = super::open_backend(g)?;
    let pw = super::password(g)?;
    let opts = backup_to_s3::repo::OpenOptions {
        cache_dir: g.cache_dir.clone(),
    };
    Ok(Repository::open_for_backup(backend, pw.as_bytes(), &opts)?)
}

fn count(v: Option<i64>) -> Option<u32> {
    match v {
        Some(n) if n < 0 => Some(u32::MAX),
        Some(0) | None => None,
        Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

fn within(v: &Option<String>) -> Result<Option<Within>> {
    v.as_deref()
        .map(str::parse::<Within>)
        .transpose()
        .map_err(Into::into)
}

fn policy(a: &PolicyArgs) -> Result<Policy> {
    Ok(Policy {
        last: count(a.keep_last),
        hourly: count(a.keep_hourly),
        daily: count(a.keep_daily),
        weekly: count(a.keep_weekly),
        monthly: count(a.keep_monthly),
        yearly: count(a.keep_yearly),
        within: within(&a.keep_within)?,
        within_hourly: within(&a.keep_within_hourly)?,
        within_daily: within(&a.keep_within_daily)?,
        within_weekly: within(&a.keep_within_weekly)?,
        within_monthly: within(&a.keep_within_monthly)?,
        within_yearly: within(&a.keep_within_yearly)?,
        tags: a.keep_tag.clone(),
    })
}

/// `1h`, `30m`, `45s`, `2d`, `0`.
fn duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid duration {s:?}"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("invalid duration {s:?} (use s, m, h or d)"),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

/// `500M`, `2G`, `1024` (bytes), binary units.
fn size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => bail!("invalid size {s:?}"),
    };
    Ok(n.saturating_mul(1 << shift))
}

fn prune_options(a: &PruneArgs) -> Result<PruneOptions> {
    let pct = a.max_unused.trim().trim_end_matches('%');
    let max_unused: f64 = pct
        .parse::<f64>()
        .with_context(|| format!("invalid --max-unused {:?}", a.max_unused))?
        / 100.0;
    Ok(PruneOptions {
        dry_run: a.dry_run,
        max_unused: max_unused.clamp(0.0, 1.0),
        max_repack_size: a.max_repack_size.as_deref().map(size).transpose()?,
        grace: if a.now {
            Duration::ZERO
        } else {
            duration(&a.grace)?
        },
        stale_after: duration(&a.stale_after)?,
        assume_forgotten: Vec::new(),
    })
}

fn resolve(repo: &Repository, specs: &[String]) -> Result<Vec<Id>> {
    specs.iter().map(|s| Ok(repo.find_snapshot(s)?.0)).collect()
}

pub fn forget(g: &Global, a: ForgetArgs, always_prune: bool) -> Result<i32> {
    let repo = open_repo(g)?;
    let opts = ForgetOptions {
        policy: policy(&a.policy)?,
        group_by: a.policy.group_by.parse::<GroupBy>()?,
        filter: SnapshotFilter {
            hosts: a.filter.hosts.clone(),
            tags: a.filter.tags.clone(),
            paths: a.filter.paths.clone(),
        },
        ids: resolve(&repo, &a.snapshots)?,
        dry_run: a.prune_args.dry_run,
    };
    let report = forget::forget(&repo, &opts)?;
    print_forget(g, &report)?;
    if a.prune || always_prune {
        let mut opts = prune_options(&a.prune_args)?;
        if opts.dry_run {
            opts.assume_forgotten = report
                .groups
                .iter()
                .flat_map(|g| &g.snapshots)
                .filter(|s| !s.keep)
                .filter_map(|s| s.id.parse::<Id>().ok())
                .collect();
        }
        let r = prune::prune(&repo, &opts)?;
        print_prune(g, &r)?;
    }
    Ok(exit::OK)
}

fn print_forget(g: &Global, r: &ForgetReport) -> Result<()> {
    if g.json {
        return print_json(r);
    }
    if g.quiet {
        return Ok(());
    }
    for group in &r.groups {
        let k = &group.group;
        println!(
            "group: host {} paths {} tags {}",
            k.host.as_deref().unwrap_or("*"),
            k.paths.as_ref().map_or("*".into(), |p| p.join(",")),
            k.tags.as_ref().map_or("*".into(), |t| t.join(","))
        );
        for s in &group.snapshots {
            println!(
                "  {:<6}  {}  {}  {}",
                if s.keep { "keep" } else { "remove" },
                s.short_id,
                s.time,
                s.reasons.join(", ")
            );
        }
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!("{} kept, {verb} {}", r.kept, r.removed);
    Ok(())
}

pub fn prune(g: &Global, a: PruneArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let r = prune::prune(&repo, &prune_options(&a)?)?;
    print_prune(g, &r)?;
    Ok(exit::OK)
}

fn print_prune(g: &Global, r: &PruneReport) -> Result<()> {
    if g.json {
        return print_json(r);
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if g.quiet {
        return Ok(());
    }
    let (condemned, deleted) = match r.dry_run {
        true => ("would condemn", "would delete"),
        false => ("condemned", "deleted"),
    };
    println!(
        "{} snapshots, {} live blobs; {} packs ({})",
        r.snapshots,
        r.blobs_live,
        r.packs_total,
        human(r.bytes_total)
    );
    println!(
        "{condemned}: {} unused packs ({}), {} orphaned ({}); {} packs repacked ({} → {})",
        r.packs_unused,
        human(r.bytes_unused),
        r.packs_orphaned,
        human(r.bytes_orphaned),
        r.packs_repacked,
        human(r.bytes_repacked),
        human(r.bytes_repack_written)
    );
    println!(
        "{deleted}: {} packs ({}), {} index objects; {} plan(s) completed, {} pack(s) rescued",
        r.packs_deleted,
        human(r.bytes_freed),
        r.index_deleted,
        r.plans_completed,
        r.packs_rescued
    );
    if r.temp_files_removed > 0 {
        let verb = if r.dry_run { "would remove" } else { "removed" };
        println!(
            "{verb} {} stale temporary file(s) ({}) left by killed runs",
            r.temp_files_removed,
            human(r.temp_bytes_removed)
        );
    }
    if let Some(p) = &r.plan {
        println!("new plan {}", &p[..8.min(p.len())]);
    }
    for w in &r.plans_waiting {
        println!("waiting: plan {w}");
    }
    Ok(())
}

fn retag_all(g: &Global, specs: &[String], change: &TagChange) -> Result<i32> {
    let repo = open_repo(g)?;
    let ids = resolve(&repo, specs)?;
    for id in ids {
        let new = forget::retag(&repo, &id, change)?;
        if g.json {
            print_json(&json!({"message_type": "tag", "old": id.to_hex(),
                "new": new.map(|n| n.to_hex()), "changed": new.is_some()}))?;
        } else if !g.quiet {
            match new {
                Some(n) => println!("snapshot {} → {}", id.short(), n.short()),
                None => println!("snapshot {} unchanged", id.short()),
            }
        }
    }
    Ok(exit::OK)
}

pub fn tag(g: &Global, a: TagArgs) -> Result<i32> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        bail!("nothing to do: give --add, --remove or --set");
    }
    let change = TagChange {
        add: a.add,
        remove: a.remove,
        set: (!a.set.is_empty()).then_some(a.set),
    };
    retag_all(g, &a.snapshots, &change)
}

pub fn protect(g: &Global, specs: &[String], on: bool) -> Result<i32> {
    if specs.is_empty() {
        bail!("name the snapshots");
    }
    let t = vec![PROTECTED_TAG.to_string()];
    let change = if on {
        TagChange {
            add: t,
            ..Default::default()
        }
    } else {
        TagChange {
            remove: t,
            ..Default::default()
        }
    };
    retag_all(g, specs, &change)
}
