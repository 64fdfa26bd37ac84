//! The inode table: every entry seen so far, by inode number, with the folder listings loaded so
//! far. Trees are loaded on first listing or lookup of a folder, outside the table's lock.

use std::collections::HashMap;
use std::sync::Arc;

use super::read::FileState;
use super::{Attr, DirEntry, Vfs, VfsError, VfsResult, ROOT_INO};
use crate::format::tree::{Node, NodeKind, Timestamp, Xattr};
use crate::id::Id;

pub(super) const SNAPSHOTS_INO: u64 = 2;
pub(super) const HOSTS_INO: u64 = 3;
pub(super) const TAGS_INO: u64 = 4;
pub(super) const LATEST_INO: u64 = 5;

pub(super) enum Entry {
    /// The root and the three top folders.
    Top,
    /// A host or tag folder (listing set by the snapshot list refresh).
    Group,
    /// A symlink made up by the view (`latest`, entries of host and tag folders).
    Link(Vec<u8>),
    /// A snapshot's folder: its root tree.
    Snapshot { tree: Id, time: Timestamp },
    /// An entry of a snapshot's tree.
    Node {
        node: Arc<Node>,
        file: Option<Arc<FileState>>,
    },
}

pub(super) struct Inode {
    pub parent: u64,
    pub entry: Entry,
}

pub(super) struct Table {
    inodes: Vec<Inode>,
    pub children: HashMap<u64, Arc<Vec<DirEntry>>>,
    /// Inodes of made-up entries by (parent, name), so they keep their numbers across refreshes.
    named: HashMap<(u64, Vec<u8>), u64>,
    /// uid and gid shown for made-up entries.
    owner: (u32, u32),
    /// Time shown for the top folders: the newest snapshot's, or the mount's.
    pub top_time: Timestamp,
}

impl Table {
    pub fn new(owner: (u32, u32), now: Timestamp) -> Table {
        let mut t = Table {
            inodes: Vec::new(),
            children: HashMap::new(),
            named: HashMap::new(),
            owner,
            top_time: now,
        };
        for (ino, parent, entry) in [
            (ROOT_INO, ROOT_INO, Entry::Top),
            (SNAPSHOTS_INO, ROOT_INO, Entry::Top),
            (HOSTS_INO, ROOT_INO, Entry::Top),
            (TAGS_INO, ROOT_INO, Entry::Top),
            (LATEST_INO, ROOT_INO, Entry::Link(Vec::new())),
        ] {
            let pushed = t.push(Inode { parent, entry });
            debug_assert_eq!(pushed, ino);
        }
        t
    }

    fn push(&mut self, inode: Inode) -> u64 {
        self.inodes.push(inode);
        self.inodes.len() as u64
    }

    pub fn get(&self, ino: u64) -> VfsResult<&Inode> {
        usize::try_from(ino)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.inodes.get(i))
            .ok_or(VfsError::UnknownInode(ino))
    }

    fn get_mut(&mut self, ino: u64) -> VfsResult<&mut Inode> {
        usize::try_from(ino)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.inodes.get_mut(i))
            .ok_or(VfsError::UnknownInode(ino))
    }

    /// The inode of a made-up entry, allocated on first use; its entry is replaced by `entry`.
    pub fn virtual_ino(&mut self, parent: u64, name: &[u8], entry: Entry) -> u64 {
        if let Some(&ino) = self.named.get(&(parent, name.to_vec())) {
            if let Ok(inode) = self.get_mut(ino) {
                inode.entry = entry;
                return ino;
            }
        }
        let ino = self.push(Inode { parent, entry });
        self.named.insert((parent, name.to_vec()), ino);
        ino
    }

    pub fn set_link(&mut self, ino: u64, target: Vec<u8>) -> VfsResult<()> {
        self.get_mut(ino)?.entry = Entry::Link(target);
        Ok(())
    }

    /// Folders whose listing comes from the snapshot list.
    pub fn is_top(&self, ino: u64) -> VfsResult<bool> {
        Ok(matches!(self.get(ino)?.entry, Entry::Top | Entry::Group))
    }

    pub fn parent(&self, ino: u64) -> VfsResult<u64> {
        Ok(self.get(ino)?.parent)
    }

    pub fn link_target(&self, ino: u64) -> VfsResult<Vec<u8>> {
        match &self.get(ino)?.entry {
            Entry::Link(t) => Ok(t.clone()),
            Entry::Node { node, .. } if node.kind == NodeKind::Symlink => {
                Ok(node.link_target.clone())
            }
            _ => Err(VfsError::InvalidKind),
        }
    }

    pub fn xattrs(&self, ino: u64) -> VfsResult<&[Xattr]> {
        match &self.get(ino)?.entry {
            Entry::Node { node, .. } => Ok(&node.xattrs),
            _ => Ok(&[]),
        }
    }

    pub fn attr(&self, ino: u64) -> VfsResult<Attr> {
        let (uid, gid) = self.owner;
        let dir = |time: Timestamp| Attr {
            ino,
            kind: NodeKind::Dir,
            perm: 0o555,
            size: 0,
            blocks: 0,
            nlink: 2,
            uid,
            gid,
            rdev: 0,
            atime: time,
            mtime: time,
            ctime: time,
        };
        Ok(match &self.get(ino)?.entry {
            Entry::Top | Entry::Group => dir(self.top_time),
            Entry::Snapshot { time, .. } => dir(*time),
            Entry::Link(target) => Attr {
                kind: NodeKind::Symlink,
                perm: 0o777,
                size: target.len() as u64,
                nlink: 1,
                ..dir(self.top_time)
            },
            Entry::Node { node, .. } => {
                let size = match node.kind {
                    NodeKind::File => node.size,
                    NodeKind::Symlink => node.link_target.len() as u64,
                    _ => 0,
                };
                Attr {
                    ino,
                    kind: node.kind,
                    perm: node.mode & 0o7777,
                    size,
                    blocks: size.div_ceil(512),
                    nlink: u32::try_from(node.links.max(1)).unwrap_or(u32::MAX),
                    uid: node.uid,
                    gid: node.gid,
                    rdev: node.rdev,
                    atime: node.atime,
                    mtime: node.mtime,
                    ctime: node.ctime,
                }
            }
        })
    }

    /// The entries of a tree, given inodes, as the listing of folder `ino`.
    fn add_tree(&mut self, ino: u64, nodes: Vec<Node>) -> Arc<Vec<DirEntry>> {
        let mut list = Vec::with_capacity(nodes.len());
        for node in nodes {
            if !node.has_safe_name() {
                continue;
            }
            let (name, kind) = (node.name.clone(), node.kind);
            let file = (kind == NodeKind::File).then(|| Arc::new(FileState::default()));
            let child = self.push(Inode {
                parent: ino,
                entry: Entry::Node {
                    node: Arc::new(node),
                    file,
                },
            });
            list.push(DirEntry {
                ino: child,
                name,
                kind,
            });
        }
        let list = Arc::new(list);
        self.children.insert(ino, list.clone());
        list
    }
}

impl Vfs {
    /// The listing of a folder, loading its tree on first use.
    pub(super) fn children(&self, ino: u64) -> VfsResult<Arc<Vec<DirEntry>>> {
        let tree_id = {
            let t = self.read_table();
            if let Some(list) = t.children.get(&ino) {
                return Ok(list.clone());
            }
            match &t.get(ino)?.entry {
                Entry::Snapshot { tree, .. } => Some(*tree),
                Entry::Node { node, .. } if node.kind == NodeKind::Dir => node.subtree,
                Entry::Top | Entry::Group => None,
                _ => return Err(VfsError::NotADirectory),
            }
        };
        let nodes = match tree_id {
            Some(id) => self.repo.load_tree(&id)?.nodes,
            None => Vec::new(),
        };
        let mut t = self.write_table();
        if let Some(list) = t.children.get(&ino) {
            return Ok(list.clone());
        }
        Ok(t.add_tree(ino, nodes))
    }

    /// A file's node and read state.
    pub(super) fn file(&self, ino: u64) -> VfsResult<(Arc<Node>, Arc<FileState>)> {
        match &self.read_table().get(ino)?.entry {
            Entry::Node {
                node,
                file: Some(state),
            } => Ok((node.clone(), state.clone())),
            Entry::Node { node, .. } if node.kind == NodeKind::Dir => Err(VfsError::IsADirectory),
            Entry::Top | Entry::Group | Entry::Snapshot { .. } => Err(VfsError::IsADirectory),
            _ => Err(VfsError::InvalidKind),
        }
    }
}
