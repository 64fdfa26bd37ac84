//! Trees (format-spec §7): one directory's entries, sorted by name bytes, stored as a tree blob
//! whose plaintext is `version byte ‖ bincode(Tree)`. Unchanged directories dedup for free.

use serde::{Deserialize, Serialize};

use super::{decode_versioned, encode_versioned, MAX_TREE_BLOB};
use crate::error::FormatError;
use crate::id::Id;

/// A point in time with nanoseconds, as stat(2) gives it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The file name's raw bytes (not necessarily UTF-8); never empty, `.`, `..` or containing `/` or NUL.
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits and set-id/sticky bits (st_mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    /// File size in bytes (files), or 0.
    pub size: u64,
    pub inode: u64,
    pub device: u64,
    pub links: u64,
    /// Device number of character and block devices.
    pub rdev: u64,
    /// Data blob ids in file order (files).
    pub content: Vec<Id>,
    /// The tree of a directory.
    pub subtree: Option<Id>,
    /// A symlink's target, raw bytes.
    pub link_target: Vec<u8>,
    pub xattrs: Vec<Xattr>,
}

impl Node {
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            size: 0,
            inode: 0,
            device: 0,
            links: 1,
            rdev: 0,
            content: Vec::new(),
            subtree: None,
            link_target: Vec::new(),
            xattrs: Vec::new(),
        }
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// A name that can be used as one path component without escaping its folder.
    pub fn has_safe_name(&self) -> bool {
        is_safe_name(&self.name)
    }
}

pub fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts nodes by name so equal directories encode to equal bytes.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        encode_versioned(self)
    }

    pub fn decode(plain: &[u8]) -> Result<Tree, FormatError> {
        let tree: Tree = decode_versioned("tree", plain, MAX_TREE_BLOB)?;
        // No writer produces these names (format-spec §7.3); one means a hostile or broken
        // writer, so the whole tree is rejected rather than risk a path escaping its folder.
        if tree.nodes.iter().any(|n| !n.has_safe_name()) {
            return Err(FormatError::malformed("tree", "unsafe entry name"));
        }
        for pair in tree.nodes.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(FormatError::malformed(
                    "tree",
                    "names not sorted or duplicated",
                ));
            }
        }
        Ok(tree)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .and_then(|i| self.nodes.get(i))
    }
}
