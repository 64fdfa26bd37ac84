//! The snapshot filesystem view without FUSE: every entry of a backed-up tree as stat(2) and
//! read(2) saw it, random-offset reads of multi-chunk files, the top folders and refresh.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backup_to_s3::format::snapshot::Snapshot;
use backup_to_s3::format::tree::{Node, NodeKind, Tree};
use backup_to_s3::id::BlobKind;
use backup_to_s3::repo::writer::WriterOptions;
use backup_to_s3::vfs::{Vfs, VfsError, VfsOptions, ROOT_INO};

use crate::cli_basics::make_tree;
use crate::common::*;

fn view(env: &Env, opts: VfsOptions) -> Vfs {
    Vfs::new(Arc::new(env.open()), opts).unwrap()
}

fn names(vfs: &Vfs, ino: u64) -> Vec<Vec<u8>> {
    vfs.readdir(ino)
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

/// The one folder below /snapshots whose name ends with the snapshot's short id.
fn snapshot_folder(vfs: &Vfs, id: &str) -> PathBuf {
    let snaps = vfs.resolve(Path::new("/snapshots")).unwrap();
    let name = names(vfs, snaps.ino)
        .into_iter()
        .find(|n| n.ends_with(format!("_{}", &id[..8]).as_bytes()))
        .unwrap_or_else(|| panic!("no folder for snapshot {id}"));
    Path::new("/snapshots").join(OsStr::from_bytes(&name))
}

fn kind_of(m: &fs::Metadata) -> NodeKind {
    let t = m.file_type();
    match () {
        _ if t.is_dir() => NodeKind::Dir,
        _ if t.is_symlink() => NodeKind::Symlink,
        _ if t.is_fifo() => NodeKind::Fifo,
        _ if t.is_socket() => NodeKind::Socket,
        _ if t.is_char_device() => NodeKind::CharDevice,
        _ if t.is_block_device() => NodeKind::BlockDevice,
        _ => NodeKind::File,
    }
}

/// Read a whole file through the view in pieces of `piece` bytes.
fn read_all(vfs: &Vfs, ino: u64, piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let part = vfs.read_at(ino, out.len() as u64, piece).unwrap();
        if part.is_empty() {
            return out;
        }
        out.extend_from_slice(&part);
    }
}

/// Compare the view's folder `ino` with the original folder, recursively.
fn assert_same_as_source(vfs: &Vfs, ino: u64, src: &Path) {
    let mut want: Vec<Vec<u8>> = fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    want.sort();
    assert_eq!(names(vfs, ino), want, "entries of {}", src.display());
    for name in want {
        let p = src.join(OsStr::from_bytes(&name));
        let m = fs::symlink_metadata(&p).unwrap();
        let a = vfs.lookup(ino, &name).unwrap();
        let what = p.display();
        assert_eq!(a.kind, kind_of(&m), "kind of {what}");
        assert_eq!(a.mode(), m.mode(), "mode of {what}");
        assert_eq!((a.uid, a.gid), (m.uid(), m.gid()), "owner of {what}");
        assert_eq!(a.nlink as u64, m.nlink(), "links of {what}");
        let mtime = (a.mtime.secs, a.mtime.nanos as i64);
        assert_eq!(mtime, (m.mtime(), m.mtime_nsec()), "mtime of {what}");
        assert_eq!(a.ctime.secs, m.ctime(), "ctime of {what}");
        assert_eq!(vfs.getattr(a.ino).unwrap(), a);
        assert_eq!(vfs.parent(a.ino).unwrap(), ino);
        match a.kind {
            NodeKind::Dir => assert_same_as_source(vfs, a.ino, &p),
            NodeKind::File => {
                assert_eq!(a.size, m.len(), "size of {what}");
                let data = read_all(vfs, a.ino, 100_000);
                assert!(data == fs::read(&p).unwrap(), "content of {what}");
            }
            NodeKind::Symlink => {
                let target = fs::read_link(&p).unwrap();
                assert_eq!(vfs.readlink(a.ino).unwrap(), target.as_os_str().as_bytes());
                assert_eq!(a.size, target.as_os_str().len() as u64);
            }
            NodeKind::CharDevice | NodeKind::BlockDevice => assert_eq!(a.rdev, m.rdev()),
            NodeKind::Fifo | NodeKind::Socket => {}
        }
        let xattrs: Vec<Vec<u8>> = match a.kind {
            NodeKind::Symlink => Vec::new(),
            _ => xattr::list(&p)
                .map(|l| l.map(|n| n.as_bytes().to_vec()).collect())
                .unwrap_or_default(),
        };
        assert_eq!(vfs.listxattr(a.ino).unwrap(), xattrs, "xattrs of {what}");
        for x in xattrs {
            let value = xattr::get(&p, OsStr::from_bytes(&x)).unwrap().unwrap();
            assert_eq!(vfs.getxattr(a.ino, &x).unwrap(), value);
        }
    }
}

#[test]
fn view_shows_every_entry_as_backed_up() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src);
    let id = env.backup(&[src.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let vfs = view(&env, VfsOptions::default());
    let folder = snapshot_folder(&vfs, &id);
    let top = vfs
        .resolve(&folder.join(src.strip_prefix("/").unwrap()))
        .unwrap();
    assert_eq!(top.kind, NodeKind::Dir);
    assert_same_as_source(&vfs, top.ino, &src);
    // Errors map to the errno a filesystem returns.
    let e = vfs.lookup(top.ino, b"no such name").unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT);
    assert!(matches!(
        vfs.read_at(top.ino, 0, 10),
        Err(VfsError::IsADirectory)
    ));
    let file = vfs.lookup(top.ino, b"empty").unwrap();
    assert_eq!(vfs.readlink(file.ino).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(vfs.readdir(file.ino).unwrap_err().errno(), libc::ENOTDIR);
    assert_eq!(vfs.getattr(1 << 40).unwrap_err().errno(), libc::ESTALE);
    assert_eq!(
        vfs.getxattr(file.ino, b"user.none").unwrap_err().errno(),
        libc::ENODATA
    );
    // The root of the view.
    assert_eq!(vfs.getattr(ROOT_INO).unwrap().kind, NodeKind::Dir);
    let root: Vec<Vec<u8>> = names(&vfs, ROOT_INO);
    assert_eq!(root, [&b"hosts"[..], b"latest", b"snapshots", b"tags"]);
}

#[test]
fn random_offset_reads_of_a_multi_chunk_file_match_the_source() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let data = Arc::new(pseudo_random(11, 6 << 20));
    fs::write(src.join("large"), data.as_slice()).unwrap();
    let summary = env.backup(&[src.to_str().unwrap()]);
    assert!(summary["chunks_new"].as_u64().unwrap() >= 3, "{summary}");
    let id = summary["snapshot_id"].as_str().unwrap().to_string();
    // Debug builds decrypt slowly (~0.5 s/MiB on a loaded machine): few, varied reads.
    // A cache smaller than the file, so chunks are evicted and fetched again.
    let vfs = Arc::new(view(
        &env,
        VfsOptions {
            cache_bytes: 2 << 20,
            ..Default::default()
        },
    ));
    let path = snapshot_folder(&vfs, &id)
        .join(src.strip_prefix("/").unwrap())
        .join("large");
    let ino = vfs.resolve(&path).unwrap().ino;
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (vfs, data) = (vfs.clone(), data.clone());
            std::thread::spawn(move || {
                let r = pseudo_random(100 + t, 8 * 12);
                for w in r.chunks_exact(8) {
                    let x = u64::from_le_bytes(w.try_into().unwrap());
                    let offset = (x % (data.len() as u64 + 1000)) as usize;
                    let size = ((x >> 40) % (1 << 20)) as usize;
                    let got = vfs.read_at(ino, offset as u64, size).unwrap();
                    let want = data
                        .get(offset..(offset + size).min(data.len()))
                        .unwrap_or(&[]);
                    assert!(got == want, "read of {size} at {offset}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let len = data.len() as u64;
    assert_eq!(
        vfs.read_at(ino, len - 1, 10).unwrap(),
        data[data.len() - 1..]
    );
    assert!(vfs.read_at(ino, len, 10).unwrap().is_empty());
    assert!(vfs.read_at(ino, len + 5, 10).unwrap().is_empty());
    assert!(vfs.read_at(ino, 0, 0).unwrap().is_empty());
    // A sequential read is served mostly from read-ahead and still correct.
    assert!(read_all(&vfs, ino, 128 << 10) == *data);
    let stats = vfs.cache_stats();
    assert!(stats.bytes <= 2 << 20, "{stats:?}");
    assert!(stats.hits > 0, "{stats:?}");
}

#[test]
fn top_folders_follow_hosts_tags_and_new_snapshots() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"one").unwrap();
    let s = src.to_str().unwrap();
    let first = env.backup(&["--host", "alpha", "--tag", "daily", s])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let vfs = view(
        &env,
        VfsOptions {
            refresh_interval: Duration::ZERO,
            ..Default::default()
        },
    );
    let first_folder = snapshot_folder(&vfs, &first);
    let first_name = first_folder.file_name().unwrap().as_bytes().to_vec();
    let latest = vfs.resolve(Path::new("/latest")).unwrap();
    assert_eq!(latest.kind, NodeKind::Symlink);
    assert_eq!(
        vfs.readlink(latest.ino).unwrap(),
        [b"snapshots/", &first_name[..]].concat()
    );

    // A backup made while the view is open appears, and `latest` follows it.
    fs::write(src.join("f"), b"two").unwrap();
    let second = env.backup(&["--host", "beta", "--tag", "daily", "--tag", "a/b", s])
        ["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let snaps = vfs.resolve(Path::new("/snapshots")).unwrap();
    assert_eq!(names(&vfs, snaps.ino).len(), 2);
    let second_folder = snapshot_folder(&vfs, &second);
    let second_name = second_folder.file_name().unwrap().as_bytes().to_vec();
    assert_eq!(
        vfs.readlink(latest.ino).unwrap(),
        [b"snapshots/", &second_name[..]].concat()
    );
    // Inode numbers of entries seen before stay the same.
    assert_eq!(vfs.resolve(&first_folder).unwrap().ino, {
        let again = snapshot_folder(&vfs, &first);
        vfs.resolve(&again).unwrap().ino
    });
    let f = second_folder.join(src.strip_prefix("/").unwrap()).join("f");
    assert_eq!(
        vfs.read_at(vfs.resolve(&f).unwrap().ino, 0, 100).unwrap(),
        b"two"
    );

    let hosts = vfs.resolve(Path::new("/hosts")).unwrap();
    assert_eq!(names(&vfs, hosts.ino), [&b"alpha"[..], b"beta"]);
    let alpha = vfs.resolve(&Path::new("/hosts/alpha").join(OsStr::from_bytes(&first_name)));
    let alpha = alpha.unwrap();
    assert_eq!(alpha.kind, NodeKind::Symlink);
    assert_eq!(
        vfs.readlink(alpha.ino).unwrap(),
        [b"../../snapshots/", &first_name[..]].concat()
    );
    // The tag "a/b" cannot be a folder name: hidden.
    let tags = vfs.resolve(Path::new("/tags")).unwrap();
    assert_eq!(names(&vfs, tags.ino), [b"daily"]);
    let daily = vfs.resolve(Path::new("/tags/daily")).unwrap();
    let mut both = vec![first_name, second_name];
    both.sort();
    assert_eq!(names(&vfs, daily.ino), both);
}

#[test]
fn unsafe_host_and_tag_names_are_hidden_and_hostile_trees_fail_with_eio() {
    let env = Env::new();
    env.init();
    let repo = env.open();
    let writer = repo.writer(WriterOptions::default());
    let (blob, _) = writer.add(BlobKind::Data, b"payload").unwrap();
    let mut file = Node::new(b"../escape".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.content = vec![blob];
    file.size = 7;
    let mut root = Tree { nodes: vec![file] };
    let (root_id, _) = writer.add(BlobKind::Tree, &root.encode()).unwrap();
    writer.finish().unwrap();
    let snap = Snapshot {
        time_ns: 1_700_000_000_000_000_000,
        tz_offset_s: 0,
        hostname: "..".into(),
        username: "x".into(),
        paths: vec!["/".into()],
        tags: vec![".".into(), "a/b".into(), "ok".into()],
        parent: None,
        tree: root_id,
        original: None,
        program_version: "x".into(),
        summary: None,
        signature: vec![],
    };
    let sid = repo.save_snapshot(&snap).unwrap();
    let vfs = Vfs::new(Arc::new(repo), VfsOptions::default()).unwrap();
    // The tree decoder rejects unsafe entry names: the folder cannot be listed (EIO), and
    // nothing of it is shown (the view also skips such names should a tree ever hold one).
    let folder = vfs.resolve(&snapshot_folder(&vfs, &sid.to_hex())).unwrap();
    assert_eq!(vfs.readdir(folder.ino).unwrap_err().errno(), libc::EIO);
    assert_eq!(
        vfs.lookup(folder.ino, b"..").unwrap_err().errno(),
        libc::EIO
    );
    let hosts = vfs.resolve(Path::new("/hosts")).unwrap();
    assert!(names(&vfs, hosts.ino).is_empty());
    let tags = vfs.resolve(Path::new("/tags")).unwrap();
    assert_eq!(names(&vfs, tags.ino), [b"ok"]);
}
