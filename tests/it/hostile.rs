//! A hostile snapshot (names with `..`, `/`, absolute paths) never writes outside the target.

use std::fs;

use backup_to_s3::format::snapshot::Snapshot;
use backup_to_s3::format::tree::{Node, NodeKind, Tree};
use backup_to_s3::id::BlobKind;
use backup_to_s3::repo::writer::WriterOptions;

use crate::common::*;

fn file(name: &[u8], content: Vec<backup_to_s3::Id>, size: u64) -> Node {
    let mut n = Node::new(name.to_vec(), NodeKind::File);
    n.mode = 0o644;
    n.content = content;
    n.size = size;
    n
}

#[test]
fn hostile_names_stay_inside_the_target() {
    let env = Env::new();
    env.init();
    let repo = env.open();
    let writer = repo.writer(WriterOptions::default());
    let (blob, _) = writer.add(BlobKind::Data, b"evil payload").unwrap();
    let mut inner = Tree {
        nodes: vec![
            file(b"../../escaped-inner", vec![blob], 12),
            file(b"fine.txt", vec![blob], 12),
        ],
    };
    let (inner_id, _) = writer.add(BlobKind::Tree, &inner.encode()).unwrap();
    let mut dir = Node::new(b"sub".to_vec(), NodeKind::Dir);
    dir.mode = 0o755;
    dir.subtree = Some(inner_id);
    let mut link = Node::new(b"link-out".to_vec(), NodeKind::Symlink);
    link.link_target = b"/".to_vec();
    let mut root = Tree {
        nodes: vec![
            file(b"..", vec![blob], 12),
            file(b"/tmp/escaped-abs", vec![blob], 12),
            file(b"a/../../escaped-slash", vec![blob], 12),
            file(b"", vec![blob], 12),
            dir,
            link,
        ],
    };
    let (root_id, _) = writer.add(BlobKind::Tree, &root.encode()).unwrap();
    writer.finish().unwrap();
    let snap = Snapshot {
        time_ns: 1,
        tz_offset_s: 0,
        hostname: "evil".into(),
        username: "evil".into(),
        paths: vec!["/".into()],
        tags: vec![],
        parent: None,
        tree: root_id,
        original: None,
        program_version: "x".into(),
        summary: None,
        signature: vec![],
    };
    let sid = repo.save_snapshot(&snap).unwrap();
    drop(repo);

    let outer = env.path("jail");
    let target = outer.join("target");
    fs::create_dir_all(&target).unwrap();
    let out = env.run(&[
        "restore",
        &sid.to_hex(),
        "--target",
        target.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Tree decoding refuses unsafe names (format-spec §7): the restore stops with an error
    // naming the tree before writing anything.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unsafe entry name"), "{stderr}");
    assert!(
        stderr.contains(&root_id.to_hex()),
        "the error names the tree: {stderr}"
    );
    // Nothing escaped: the jail holds only the target, /tmp holds no escaped file.
    let jail: Vec<_> = fs::read_dir(&outer)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(jail, vec![std::ffi::OsString::from("target")]);
    assert!(!std::path::Path::new("/tmp/escaped-abs").exists());
    assert!(!env.dir.path().join("escaped-inner").exists());
    assert!(
        fs::read_dir(&target).unwrap().next().is_none(),
        "nothing restored from a hostile tree"
    );
}

#[test]
fn pre_existing_symlink_in_the_target_is_not_followed() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), b"content").unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let target = env.path("t");
    let victim = env.path("victim");
    fs::create_dir_all(&victim).unwrap();
    let inner = restored(&target, &src);
    fs::create_dir_all(&inner).unwrap();
    std::os::unix::fs::symlink(&victim, inner.join("d")).unwrap();
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        fs::read_dir(&victim).unwrap().next().is_none(),
        "restore wrote through a symlink"
    );
}
