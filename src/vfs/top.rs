//! The top folders: `snapshots`, `hosts`, `tags` and `latest`, rebuilt from the repository's
//! snapshot list when they are used, at most once per refresh interval.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::table::{Entry, Table, HOSTS_INO, LATEST_INO, SNAPSHOTS_INO, TAGS_INO};
use super::{DirEntry, Vfs, VfsResult, ROOT_INO};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{is_safe_name, NodeKind, Timestamp};
use crate::id::Id;

#[derive(Default)]
pub(super) struct TopState {
    last: Option<Instant>,
    /// Host and tag folders of the last refresh.
    groups: HashSet<u64>,
}

/// uid and gid of this process, shown as the owner of made-up entries.
pub(super) fn owner() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// `<YYYY-MM-DDTHH:MM:SS>_<short id>` in this machine's time zone.
pub fn snapshot_name(id: &Id, snap: &Snapshot) -> String {
    let tz = jiff::tz::TimeZone::system();
    let time = snap.time().to_zoned(tz).strftime("%Y-%m-%dT%H:%M:%S");
    format!("{time}_{}", id.short())
}

fn timestamp(snap: &Snapshot) -> Timestamp {
    Timestamp {
        secs: snap.time_ns.div_euclid(1_000_000_000),
        nanos: u32::try_from(snap.time_ns.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

impl Vfs {
    /// Re-read the snapshot list unless it was read less than the refresh interval ago. A failed
    /// re-read keeps the previous listing (and is logged).
    pub(super) fn maybe_refresh(&self) -> VfsResult<()> {
        let due = {
            let top = self.top.lock().unwrap_or_else(|e| e.into_inner());
            top.last
                .is_none_or(|t| t.elapsed() >= self.opts.refresh_interval)
        };
        if !due {
            return Ok(());
        }
        if let Err(e) = self.refresh() {
            tracing::warn!("re-reading the snapshot list: {e}");
        }
        Ok(())
    }

    /// Re-read the index and the snapshot list now and rebuild the top folders.
    pub fn refresh(&self) -> VfsResult<()> {
        let mut top = self.top.lock().unwrap_or_else(|e| e.into_inner());
        if top
            .last
            .is_some_and(|t| t.elapsed() < self.opts.refresh_interval.min(FRESH))
        {
            return Ok(()); // another thread just did it
        }
        top.last = Some(Instant::now());
        self.repo.sync_index()?;
        let list = self.repo.list_snapshots()?;
        let mut t = self.write_table();
        let groups = rebuild(&mut t, &list);
        for stale in top.groups.difference(&groups) {
            t.children.insert(*stale, Arc::new(Vec::new()));
        }
        top.groups = groups;
        Ok(())
    }
}

/// Two refreshes asked for at the same moment by two threads do the work once.
const FRESH: std::time::Duration = std::time::Duration::from_millis(200);

/// Set the top listings from a snapshot list (oldest first); returns the group folders.
fn rebuild(t: &mut Table, list: &[(Id, Snapshot)]) -> HashSet<u64> {
    let mut snapshots = Vec::with_capacity(list.len());
    let mut used = HashSet::new();
    let mut hosts: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut tags: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut newest = None;
    for (id, snap) in list {
        let mut name = snapshot_name(id, snap);
        if !used.insert(name.clone()) {
            name = id.to_hex();
            used.insert(name.clone());
        }
        let time = timestamp(snap);
        let entry = Entry::Snapshot {
            tree: snap.tree,
            time,
        };
        let ino = t.virtual_ino(SNAPSHOTS_INO, name.as_bytes(), entry);
        snapshots.push(dir_entry(ino, &name, NodeKind::Dir));
        hosts.entry(&snap.hostname).or_default().push(name.clone());
        for tag in &snap.tags {
            tags.entry(tag).or_default().push(name.clone());
        }
        newest = Some((name, time));
    }
    let mut groups = HashSet::new();
    for (folder, map) in [(HOSTS_INO, hosts), (TAGS_INO, tags)] {
        let mut listing = Vec::new();
        for (group, names) in map {
            if !is_safe_name(group.as_bytes()) {
                continue;
            }
            let gino = t.virtual_ino(folder, group.as_bytes(), Entry::Group);
            let mut links = Vec::with_capacity(names.len());
            for name in names {
                let target = format!("../../snapshots/{name}").into_bytes();
                let lino = t.virtual_ino(gino, name.as_bytes(), Entry::Link(target));
                links.push(dir_entry(lino, &name, NodeKind::Symlink));
            }
            set_listing(t, gino, links);
            listing.push(dir_entry(gino, group, NodeKind::Dir));
            groups.insert(gino);
        }
        set_listing(t, folder, listing);
    }
    set_listing(t, SNAPSHOTS_INO, snapshots);
    let mut root = vec![
        dir_entry(HOSTS_INO, "hosts", NodeKind::Dir),
        dir_entry(SNAPSHOTS_INO, "snapshots", NodeKind::Dir),
        dir_entry(TAGS_INO, "tags", NodeKind::Dir),
    ];
    if let Some((name, time)) = newest {
        // Ignoring the error is fine: LATEST_INO is allocated by Table::new.
        let _ = t.set_link(LATEST_INO, format!("snapshots/{name}").into_bytes());
        root.push(dir_entry(LATEST_INO, "latest", NodeKind::Symlink));
        t.top_time = time;
    }
    set_listing(t, ROOT_INO, root);
    groups
}

fn dir_entry(ino: u64, name: &str, kind: NodeKind) -> DirEntry {
    DirEntry {
        ino,
        name: name.as_bytes().to_vec(),
        kind,
    }
}

/// Store a listing sorted by name (lookups binary-search it).
fn set_listing(t: &mut Table, ino: u64, mut list: Vec<DirEntry>) {
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list.dedup_by(|a, b| a.name == b.name);
    t.children.insert(ino, Arc::new(list));
}
