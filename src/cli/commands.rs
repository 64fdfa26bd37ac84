//! One function per command: call the library, print for humans or as JSON, pick the exit code.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;

use backup_to_s3::format::keyfile::KdfParams;
use backup_to_s3::format::snapshot::Snapshot;
use backup_to_s3::format::tree::NodeKind;
use backup_to_s3::id::{BlobKind, Id};
use backup_to_s3::ops::backup::{self, BackupOptions, Source};
use backup_to_s3::ops::check::{self, CheckOptions};
use backup_to_s3::ops::dump;
use backup_to_s3::ops::filter::PatternSet;
use backup_to_s3::ops::restore::{self, RestoreOptions};
use backup_to_s3::ops::snapshots::{self, format_ts, SnapshotFilter};
use backup_to_s3::repo::{InitOptions, Repository};

use super::args::{
    BackupArgs, CheckArgs, Cli, Command, DumpArgs, FilterArgs, InitArgs, KeyAction, LsArgs,
    RestoreArgs,
};
use super::command_source::CommandOutput;
use super::progress::Bar;
use super::{exit, location, new_password, open_backend, open_repo};

pub fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init(g, a),
        Command::Backup(a) => backup_cmd(g, a),
        Command::Snapshots(f) => list_snapshots(g, f),
        Command::Ls(a) => ls(g, a),
        Command::Dump(a) => dump_cmd(g, a),
        Command::Diff { a, b } => diff(g, &a, &b),
        Command::Find { pattern, filter } => find(g, &pattern, filter),
        Command::Restore(a) => restore_cmd(g, a),
        Command::Check(a) => check_cmd(g, a),
        Command::Key { action } => key(g, action),
        Command::Cat { kind, id } => cat(g, &kind, id.as_deref()),
        #[cfg(all(feature = "fuse", target_os = "linux"))]
        Command::Mount(a) => super::mount::mount(g, a),
        Command::Forget(a) => super::prune_cmds::forget(g, a, false),
        Command::Prune(a) => super::prune_cmds::prune(g, a),
        Command::Cleanup(a) => super::prune_cmds::forget(g, a, true),
        Command::Tag(a) => super::prune_cmds::tag(g, a),
        Command::Protect { snapshots } => super::prune_cmds::protect(g, &snapshots, true),
        Command::Unprotect { snapshots } => super::prune_cmds::protect(g, &snapshots, false),
    }
}

pub(super) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

fn filter(f: &FilterArgs) -> SnapshotFilter {
    SnapshotFilter {
        hosts: f.hosts.clone(),
        tags: f.tags.clone(),
        paths: f.paths.clone(),
    }
}

fn kdf(mib: u32, iterations: u32) -> KdfParams {
    KdfParams {
        m_cost: mib.saturating_mul(1024),
        t_cost: iterations,
        p_cost: 1,
    }
}

fn init(g: &super::args::Global, a: InitArgs) -> Result<i32> {
    let backend = open_backend(g)?;
    let pw = new_password(None, Some(g))?;
    let opts = InitOptions {
        kdf: kdf(a.kdf_memory_mib, a.kdf_iterations),
        compression_level: a.compression,
        pack_target_size: a.pack_size_mib.saturating_mul(1 << 20),
        cache_dir: g.cache_dir.clone(),
        ..Default::default()
    };
    let id = Repository::init(backend, pw.as_bytes(), &opts)?;
    if g.json {
        print_json(
            &json!({"message_type": "initialized", "repository": location(g), "id": id.to_hex()}),
        )?;
    } else if !g.quiet {
        println!("created repository {} at {}", id.short(), location(g));
        println!("keep the password safe: without it the data cannot be read");
    }
    Ok(exit::OK)
}

fn backup_cmd(g: &super::args::Global, a: BackupArgs) -> Result<i32> {
    if a.paths.is_empty() && !a.stdin {
        bail!(if a.stdin_from_command {
            "--stdin-from-command needs a command: backup --stdin-from-command -- CMD ARGS..."
        } else {
            "nothing to back up: name paths or use --stdin"
        });
    }
    let from_stdin = a.stdin || a.stdin_from_command;
    let repo = super::prune_cmds::open_for_backup(g, a.dry_run)?;
    let mut excludes = a.exclude.clone();
    for f in &a.exclude_file {
        excludes.extend(PatternSet::read_file(f)?);
    }
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p)?.0),
        None => None,
    };
    let opts = BackupOptions {
        excludes,
        exclude_if_present: a.exclude_if_present.clone(),
        one_file_system: a.one_file_system,
        tags: a.tag.clone(),
        host: a.host.clone(),
        dry_run: a.dry_run,
        force: a.force,
        parent,
        stdin_filename: from_stdin.then(|| a.stdin_filename.clone()),
        connections: super::upload_connections(g),
        threads: 0,
    };
    let bar = Bar::new(!g.json, g.quiet, "backup");
    let summary = if a.stdin {
        let mut stdin = std::io::stdin();
        backup::backup(&repo, Source::Stdin(&mut stdin), &opts, &bar)?
    } else if a.stdin_from_command {
        let argv: Vec<_> = a.paths.iter().map(|p| p.clone().into_os_string()).collect();
        let mut output = CommandOutput::spawn(&argv)?;
        backup::backup(&repo, Source::Stdin(&mut output), &opts, &bar)?
    } else {
        backup::backup(&repo, Source::Paths(&a.paths), &opts, &bar)?
    };
    bar.finish();
    let mut summary = summary;
    count_all_requests(
        &repo,
        &mut summary.requests,
        &mut summary.bytes_up,
        &mut summary.bytes_down,
    );
    if g.json {
        for w in &summary.warnings {
            print_json(&json!({"message_type": "error", "error": w}))?;
        }
        print_json(&summary)?;
    } else if !g.quiet {
        println!(
            "files: {} new, {} changed, {} unmodified{}",
            summary.files_new,
            summary.files_changed,
            summary.files_unmodified,
            if summary.files_unreadable > 0 {
                format!(", {} unreadable", summary.files_unreadable)
            } else {
                String::new()
            }
        );
        println!(
            "dirs:  {} new, {} changed, {} unmodified",
            summary.dirs_new, summary.dirs_changed, summary.dirs_unmodified
        );
        println!(
            "read {} in {:.2}s, added {} ({} new chunks, {} deduplicated)",
            human(summary.bytes_read),
            summary.duration_s,
            human(summary.data_added),
            summary.chunks_new,
            summary.chunks_deduplicated
        );
        match &summary.snapshot_id {
            Some(id) => println!("snapshot {} saved", &id[..8]),
            None => println!("dry run: nothing stored"),
        }
    }
    Ok(if summary.files_unreadable > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// Report every request of the run, opening the repository included (config, key, index sync).
fn count_all_requests(
    repo: &Repository,
    requests: &mut backup_to_s3::backend::RequestStats,
    up: &mut u64,
    down: &mut u64,
) {
    let all = repo.request_stats();
    *requests = all;
    *up = all.bytes_up;
    *down = all.bytes_down;
}

pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

fn snapshot_json(id: &Id, s: &Snapshot) -> serde_json::Value {
    json!({
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": s.time().to_string(),
        "hostname": s.hostname,
        "username": s.username,
        "paths": s.paths,
        "tags": s.tags,
        "tree": s.tree.to_hex(),
        "parent": s.parent.map(|p| p.to_hex()),
        "original": s.original.map(|p| p.to_hex()),
        "summary": s.summary,
    })
}

fn local_time(s: &Snapshot) -> String {
    let tz = jiff::tz::TimeZone::system();
    s.time()
        .to_zoned(tz)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn list_snapshots(g: &super::args::Global, f: FilterArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let list = snapshots::select(&repo, &filter(&f))?;
    if g.json {
        let v: Vec<_> = list.iter().map(|(id, s)| snapshot_json(id, s)).collect();
        print_json(&v)?;
        return Ok(exit::OK);
    }
    println!(
        "{:<8}  {:<19}  {:<16}  {:<16}  paths",
        "id", "time", "host", "tags"
    );
    for (id, s) in &list {
        println!(
            "{:<8}  {:<19}  {:<16}  {:<16}  {}",
            id.short(),
            local_time(s),
            s.hostname,
            s.tags.join(","),
            s.paths.join(" ")
        );
    }
    println!("{} snapshot(s)", list.len());
    Ok(exit::OK)
}

fn mode_string(kind: NodeKind, mode: u32) -> String {
    let t = match kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn dump_cmd(g: &super::args::Global, a: DumpArgs) -> Result<i32> {
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        bail!("dump writes the file's bytes to standard output: redirect it to a file or a pipe");
    }
    let repo = open_repo(g)?;
    let (_, snap) = repo.find_snapshot(&a.snapshot)?;
    let path = Path::new("/").join(&a.path);
    let bytes = dump::dump_file(
        &repo,
        &snap.tree,
        &path,
        super::connections(g),
        &mut stdout.lock(),
    )?;
    if g.verbose > 0 {
        eprintln!("wrote {bytes} bytes of {}", path.display());
    }
    Ok(exit::OK)
}

fn ls(g: &super::args::Global, a: LsArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let (sid, snap) = repo.find_snapshot(&a.snapshot)?;
    let base = PathBuf::from(a.path.as_deref().unwrap_or("/"));
    let (tree_id, _) = snapshots::tree_at(&repo, &snap.tree, &base)?;
    if g.json {
        print_json(
            &json!({"message_type": "snapshot", "id": sid.to_hex(), "time": snap.time().to_string(), "paths": snap.paths}),
        )?;
    }
    snapshots::walk(&repo, &tree_id, &mut |p, n| {
        let full = base.join(p.strip_prefix("/").unwrap_or(p));
        if g.json {
            print_json(&json!({
                "message_type": "node",
                "path": full,
                "name": n.name_lossy(),
                "type": format!("{:?}", n.kind).to_lowercase(),
                "size": n.size,
                "mode": n.mode,
                "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
                "mtime": format_ts(n.mtime),
                "link_target": (n.kind == NodeKind::Symlink).then(|| String::from_utf8_lossy(&n.link_target).into_owned()),
            }))
            .map_err(|e| backup_to_s3::Error::Invalid(e.to_string()))?;
        } else if a.long {
            let target = if n.kind == NodeKind::Symlink {
                format!(" -> {}", String::from_utf8_lossy(&n.link_target))
            } else {
                String::new()
            };
            println!(
                "{} {:>8} {:>8} {:>12} {} {}{}",
                mode_string(n.kind, n.mode),
                n.user,
                n.group,
                n.size,
                format_ts(n.mtime),
                full.display(),
                target
            );
        } else {
            println!("{}", full.display());
        }
        Ok(())
    })?;
    Ok(exit::OK)
}

fn diff(g: &super::args::Global, a: &str, b: &str) -> Result<i32> {
    let repo = open_repo(g)?;
    let (_, sa) = repo.find_snapshot(a)?;
    let (_, sb) = repo.find_snapshot(b)?;
    let changes = snapshots::diff(&repo, &sa.tree, &sb.tree)?;
    if g.json {
        print_json(&changes)?;
    } else {
        for c in &changes {
            println!("{:<2} {}", c.change, c.path.display());
        }
    }
    Ok(exit::OK)
}

fn find(g: &super::args::Global, pattern: &str, f: FilterArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let found = snapshots::find(&repo, &filter(&f), pattern)?;
    if g.json {
        print_json(&found)?;
    } else {
        for m in &found {
            println!(
                "{}  {:<9} {:>12}  {}  {}",
                m.snapshot,
                m.kind,
                m.size,
                m.mtime,
                m.path.display()
            );
        }
    }
    Ok(exit::OK)
}

/// Parse `--at`: RFC 3339, or "YYYY-MM-DD[ HH:MM[:SS]]" in the local time zone.
fn parse_at(s: &str) -> Result<jiff::Timestamp> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let tz = jiff::tz::TimeZone::system();
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = jiff::civil::DateTime::strptime(fmt, s) {
            return Ok(dt.to_zoned(tz.clone())?.timestamp());
        }
    }
    if let Ok(d) = jiff::civil::Date::strptime("%Y-%m-%d", s) {
        // A bare date means the end of that day.
        return Ok(d.at(23, 59, 59, 999_999_999).to_zoned(tz)?.timestamp());
    }
    bail!("cannot read time {s:?}: use \"2026-01-15 14:30\" or RFC 3339")
}

fn restore_cmd(g: &super::args::Global, a: RestoreArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let (sid, snap) = match (&a.snapshot, &a.at) {
        (_, Some(at)) => snapshots::at_time(&repo, &filter(&a.filter), parse_at(at)?)?,
        (Some(spec), None) if spec == "latest" => snapshots::select(&repo, &filter(&a.filter))?
            .into_iter()
            .last()
            .context("no snapshot matches")?,
        (Some(spec), None) => repo.find_snapshot(spec)?,
        (None, None) => bail!("name a snapshot (id, prefix or `latest`) or give --at"),
    };
    let opts = RestoreOptions {
        includes: a.include.clone(),
        excludes: a.exclude.clone(),
        owners: true,
        connections: super::connections(g),
        dry_run: a.dry_run,
        buffered: a.buffered,
        ..Default::default()
    };
    let bar = Bar::new(!g.json, g.quiet, "restore");
    let mut summary = restore::restore(&repo, &sid, &a.target, &opts, &bar)?;
    bar.finish();
    let mut up = 0;
    count_all_requests(
        &repo,
        &mut summary.requests,
        &mut up,
        &mut summary.bytes_down,
    );
    if g.json {
        for w in &summary.warnings {
            print_json(&json!({"message_type": "error", "error": w}))?;
        }
        print_json(&summary)?;
    } else {
        for w in &summary.warnings {
            eprintln!("warning: {w}");
        }
        if !g.quiet {
            println!(
                "restored snapshot {} ({}) to {}: {} files, {} folders, {} in {:.2}s",
                sid.short(),
                local_time(&snap),
                a.target.display(),
                summary.files_restored,
                summary.dirs_restored,
                human(summary.bytes_restored),
                summary.duration_s
            );
        }
    }
    Ok(if summary.warnings.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

fn check_cmd(g: &super::args::Global, a: CheckArgs) -> Result<i32> {
    let repo = open_repo(g)?;
    let subset = match &a.read_data_subset {
        Some(s) => {
            let v: f64 = s
                .trim_end_matches('%')
                .parse()
                .with_context(|| format!("bad --read-data-subset {s:?}"))?;
            if !(0.0..=100.0).contains(&v) {
                bail!("--read-data-subset must be between 0% and 100%");
            }
            Some(v / 100.0)
        }
        None => None,
    };
    let opts = CheckOptions {
        read_data: a.read_data || subset.is_some(),
        read_data_subset: subset,
        connections: super::connections(g),
    };
    let bar = Bar::new(!g.json, g.quiet, "check");
    let mut report = check::check(&repo, &opts, &bar)?;
    bar.finish();
    let (mut up, mut down) = (0, 0);
    count_all_requests(&repo, &mut report.requests, &mut up, &mut down);
    if g.json {
        print_json(&report)?;
    } else {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        if !g.quiet {
            println!(
                "checked {} snapshots, {} trees, {} packs{}",
                report.snapshots_checked,
                report.trees_checked,
                report.packs_checked,
                if opts.read_data {
                    format!(
                        ", read {} packs ({}), verified {} blobs",
                        report.packs_read,
                        human(report.bytes_read),
                        report.blobs_verified
                    )
                } else {
                    String::new()
                }
            );
            println!(
                "{}",
                if report.ok() {
                    "no errors were found"
                } else {
                    "the repository is damaged"
                }
            );
        }
    }
    Ok(if report.ok() { exit::OK } else { exit::ERROR })
}

fn key(g: &super::args::Global, action: KeyAction) -> Result<i32> {
    let repo = open_repo(g)?;
    let pw = super::password(g)?;
    match action {
        KeyAction::List => {
            let keys = repo.list_keys(pw.as_bytes())?;
            if g.json {
                print_json(&keys)?;
            } else {
                println!(
                    " {:<8}  {:<25}  {:<16}  {:<10}  kdf",
                    "id", "created", "host", "user"
                );
                for k in keys {
                    println!(
                        "{}{:<8}  {:<25}  {:<16}  {:<10}  {} m={}MiB t={} p={}",
                        if k.current { '*' } else { ' ' },
                        &k.id[..8.min(k.id.len())],
                        k.created,
                        k.hostname,
                        k.username,
                        k.kdf,
                        k.m_cost_kib / 1024,
                        k.t_cost,
                        k.p_cost
                    );
                }
            }
        }
        KeyAction::Add { new_password_file } => {
            let npw = new_password(new_password_file.as_ref(), None)?;
            let id = repo.add_key(npw.as_bytes(), KdfParams::default())?;
            report(g, "key_added", &id.to_hex())?;
        }
        KeyAction::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            report(g, "key_removed", &removed)?;
        }
        KeyAction::Passwd { new_password_file } => {
            let npw = new_password(new_password_file.as_ref(), None)?;
            let id = repo.change_password(pw.as_bytes(), npw.as_bytes(), KdfParams::default())?;
            report(g, "password_changed", &id.to_hex())?;
        }
    }
    Ok(exit::OK)
}

fn report(g: &super::args::Global, what: &str, id: &str) -> Result<()> {
    if g.json {
        print_json(&json!({"message_type": what, "id": id}))
    } else {
        println!("{}: {}", what.replace('_', " "), id);
        Ok(())
    }
}

fn cat(g: &super::args::Global, kind: &str, id: Option<&str>) -> Result<i32> {
    let repo = open_repo(g)?;
    let need_id = || -> Result<Id> {
        id.context("this object kind needs an id")?
            .parse::<Id>()
            .map_err(Into::into)
    };
    let value = match kind {
        "config" => serde_json::to_value(repo.config())?,
        "snapshot" => {
            let (sid, s) = repo.find_snapshot(id.context("snapshot needs an id")?)?;
            snapshot_json(&sid, &s)
        }
        "tree" => serde_json::to_value(repo.load_tree(&need_id()?)?)?,
        "index" => {
            let obj = repo.load_index_object(&need_id()?.to_hex())?;
            json!({
                "supersedes": obj.supersedes.iter().map(Id::to_hex).collect::<Vec<_>>(),
                "packs": obj.packs.iter().map(|p| json!({"pack": p.pack.to_hex(), "blobs": p.entries.len()})).collect::<Vec<_>>(),
            })
        }
        "key" => {
            let bytes = repo
                .backend()
                .get(backup_to_s3::backend::Kind::Key, &need_id()?.to_hex())?;
            let kf = backup_to_s3::format::keyfile::KeyFile::decode(&bytes)?;
            json!({"created": kf.created, "hostname": kf.hostname, "username": kf.username, "kdf": kf.kdf, "kdf_params": kf.kdf_params})
        }
        "pack" => {
            let name = need_id()?.to_hex();
            let size = repo
                .backend()
                .stat(backup_to_s3::backend::Kind::Pack, &name)?
                .context("no such pack")?;
            let entries = check::read_pack_header(&repo, &name, size)?;
            json!(entries.iter().map(|e| json!({"kind": format!("{:?}", e.kind).to_lowercase(), "id": e.id.to_hex(), "offset": e.offset, "length": e.length, "raw_length": e.raw_length})).collect::<Vec<_>>())
        }
        "blob" => {
            let data = repo.read_blob(BlobKind::Data, &need_id()?)?;
            json!({"length": data.len()})
        }
        other => {
            bail!("unknown object kind {other:?}: config, snapshot, tree, index, key, pack or blob")
        }
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(exit::OK)
}
