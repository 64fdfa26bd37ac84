//! Helpers shared by the fuzz targets: the fixed test-vector key and a way past the AEAD.
//!
//! Most repository objects are sealed, so random bytes never reach the decoders behind the
//! authentication check. The targets therefore also seal the fuzzer's input under a fixed key
//! and nonce and hand the result to the real, keyed entry point: that exercises exactly the
//! code a reader runs on an object written by someone who holds the key.

use backup_to_s3::crypto::{aead, MasterKey, SealKey, SubKeys};

/// The master key of the test vectors (format-spec/vectors): bytes 0x00..=0x1f.
pub fn master() -> MasterKey {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8;
    }
    MasterKey::from_bytes(k)
}

pub fn subkeys() -> SubKeys {
    master().subkeys()
}

/// Seal `plain` under `key` with an all-zero nonce (fuzzing only).
pub fn seal(key: &SealKey, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    aead::seal_with_nonce(key, &[0u8; aead::NONCE_LEN], aad, plain)
}

pub mod mirror {
    //! `Arbitrary` mirrors of the format structs (which do not derive it), for round-trip targets.

    use arbitrary::Arbitrary;
    use backup_to_s3::format::tree::{Node, NodeKind, Timestamp, Xattr};
    use backup_to_s3::Id;

    #[derive(Arbitrary, Debug)]
    pub struct ArbNode {
        name: Vec<u8>,
        kind: u8,
        mode: u32,
        uid: u32,
        gid: u32,
        user: String,
        group: String,
        times: [(i64, u32); 3],
        size: u64,
        inode: u64,
        device: u64,
        links: u64,
        rdev: u64,
        content: Vec<[u8; 32]>,
        subtree: Option<[u8; 32]>,
        link_target: Vec<u8>,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    }

    pub const KINDS: [NodeKind; 7] = [
        NodeKind::File,
        NodeKind::Dir,
        NodeKind::Symlink,
        NodeKind::CharDevice,
        NodeKind::BlockDevice,
        NodeKind::Fifo,
        NodeKind::Socket,
    ];

    impl From<ArbNode> for Node {
        fn from(a: ArbNode) -> Node {
            let ts = |(secs, nanos): (i64, u32)| Timestamp { secs, nanos };
            Node {
                name: a.name,
                kind: KINDS[usize::from(a.kind) % KINDS.len()],
                mode: a.mode,
                uid: a.uid,
                gid: a.gid,
                user: a.user,
                group: a.group,
                mtime: ts(a.times[0]),
                atime: ts(a.times[1]),
                ctime: ts(a.times[2]),
                size: a.size,
                inode: a.inode,
                device: a.device,
                links: a.links,
                rdev: a.rdev,
                content: a.content.into_iter().map(Id).collect(),
                subtree: a.subtree.map(Id),
                link_target: a.link_target,
                xattrs: a
                    .xattrs
                    .into_iter()
                    .map(|(name, value)| Xattr { name, value })
                    .collect(),
            }
        }
    }

    #[derive(Arbitrary, Debug)]
    pub struct ArbEntry {
        pub kind: bool,
        pub id: [u8; 32],
        pub offset: u32,
        pub length: u32,
        pub raw_length: u32,
    }

    #[derive(Arbitrary, Debug)]
    pub struct ArbIndex {
        pub supersedes: Vec<[u8; 32]>,
        pub packs: Vec<([u8; 32], Vec<ArbEntry>)>,
    }

    #[derive(Arbitrary, Debug)]
    pub struct ArbChunker {
        pub raw: (u32, u32, u32, u8),
        pub small: (u16, u16, u16, u8),
        pub use_raw: bool,
        pub seed: u64,
        pub data: Vec<u8>,
    }
}
