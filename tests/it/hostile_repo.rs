//! Hostile repositories beyond `hostile.rs`: NUL in names, self-referencing and absurdly deep
//! trees, enormous declared sizes, blobs swapped between ids or between data and tree contexts,
//! replayed snapshot and index objects, absolute symlinks out of the target. Each ends in a clear
//! error or contained behaviour: no hang, no panic, nothing written outside the target.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use backup_to_s3::backend::{Backend, Kind, Temperature};
use backup_to_s3::format::snapshot::Snapshot;
use backup_to_s3::format::tree::{Node, NodeKind, Tree};
use backup_to_s3::id::BlobKind;
use backup_to_s3::repo::writer::{PackWriter, WriterOptions};
use backup_to_s3::repo::Repository;
use backup_to_s3::Id;

use crate::common::*;
use crate::relutil::*;

fn file(name: &[u8], content: Vec<Id>, size: u64) -> Node {
    let mut n = Node::new(name.to_vec(), NodeKind::File);
    n.mode = 0o644;
    n.content = content;
    n.size = size;
    n
}

fn dir(name: &[u8], subtree: Id) -> Node {
    let mut n = Node::new(name.to_vec(), NodeKind::Dir);
    n.mode = 0o755;
    n.subtree = Some(subtree);
    n
}

fn tree(w: &PackWriter<'_>, nodes: Vec<Node>) -> Id {
    let mut t = Tree { nodes };
    w.add(BlobKind::Tree, &t.encode()).unwrap().0
}

/// One snapshot per tree, 1 ns apart; their ids in hex.
fn save_snapshots(repo: &Repository, trees: &[Id]) -> Vec<String> {
    trees
        .iter()
        .enumerate()
        .map(|(i, t)| {
            repo.save_snapshot(&snapshot(*t, i as i64 + 1))
                .unwrap()
                .to_hex()
        })
        .collect()
}

fn snapshot(tree: Id, time_ns: i64) -> Snapshot {
    Snapshot {
        time_ns,
        tz_offset_s: 0,
        hostname: "evil".into(),
        username: "evil".into(),
        paths: vec!["/".into()],
        tags: vec![],
        parent: None,
        tree,
        original: None,
        program_version: "x".into(),
        summary: None,
        signature: vec![],
    }
}

/// Run a command that must end (no endless loop) within a generous bound, and not by a panic.
fn run_bounded(env: &Env, args: &[&str]) -> Output {
    // Output goes to files: a pipe nobody reads while we poll would stall a long listing.
    let (o, e) = (env.path("run-stdout"), env.path("run-stderr"));
    let mut child = env
        .cmd()
        .args(args)
        .stdout(fs::File::create(&o).unwrap())
        .stderr(fs::File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("{args:?} did not finish: a loop on a hostile tree?");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = Output {
        status,
        stdout: fs::read(&o).unwrap(),
        stderr: fs::read(&e).unwrap(),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1 | 3)),
        "{args:?} ended with {:?}: {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Restore into `<jail>/target`; the jail must hold nothing else afterwards.
fn restore_jailed(env: &Env, id: &str, jail: &str) -> Output {
    let outer = env.path(jail);
    let target = outer.join("target");
    fs::create_dir_all(&target).unwrap();
    let out = run_bounded(env, &["restore", id, "--target", target.to_str().unwrap()]);
    let names: Vec<_> = fs::read_dir(&outer)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("target")]);
    out
}

#[test]
fn nul_names_self_references_and_deep_trees_are_bounded() {
    let env = Env::new();
    env.init();
    let repo = env.open();
    let w = repo.writer(WriterOptions::default());
    let (blob, _) = w.add(BlobKind::Data, b"payload").unwrap();
    // A NUL in a name is refused (it would truncate the path), its siblings are restored.
    let nul = tree(
        &w,
        vec![file(b"a\0b", vec![blob], 7), file(b"ok", vec![blob], 7)],
    );
    // A tree cannot name itself: ids are keyed hashes of the content, so the attempt leaves a
    // dangling subtree id, which every reader reports.
    let mut probe = Tree {
        nodes: vec![dir(b"loop", Id::default())],
    };
    let own = repo.codec().id(&probe.encode());
    let selfref = tree(&w, vec![dir(b"loop", own)]);
    assert_ne!(selfref, own);
    // A chain deeper than any backup writes (and than the stack would survive unbounded).
    let mut deep = tree(&w, vec![]);
    for _ in 0..2100 {
        deep = tree(&w, vec![dir(b"d", deep)]);
    }
    w.finish().unwrap();
    let ids = save_snapshots(&repo, &[nul, selfref, deep]);
    drop(repo);

    let out = restore_jailed(&env, &ids[0], "jail-nul");
    // The tree decoder refuses a NUL in a name (format-spec §7): nothing is restored.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unsafe entry name"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path("jail-nul/target/ok").exists());
    assert_eq!(run_bounded(&env, &["ls", &ids[0]]).status.code(), Some(1));

    let out = restore_jailed(&env, &ids[1], "jail-self");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&own.to_hex()), "{}", stderr(&out));
    assert_eq!(run_bounded(&env, &["ls", &ids[1]]).status.code(), Some(1));

    let out = restore_jailed(&env, &ids[2], "jail-deep");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("deeper than"), "{}", stderr(&out));
    let ls = run_bounded(&env, &["ls", &ids[2]]);
    assert_eq!(ls.status.code(), Some(1));
    assert!(stderr(&ls).contains("deeper than"));
    let check = run_bounded(&env, &["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stderr(&check).contains("deeper than"), "{}", stderr(&check));
    assert!(stderr(&check).contains(&own.to_hex()), "{}", stderr(&check));
}

#[test]
fn enormous_declared_size_is_bounded_by_the_content() {
    let env = Env::new();
    env.init();
    let repo = env.open();
    let w = repo.writer(WriterOptions::default());
    let (blob, _) = w.add(BlobKind::Data, b"small content").unwrap();
    let root = tree(&w, vec![file(b"huge", vec![blob], 1 << 60)]);
    w.finish().unwrap();
    let id = repo.save_snapshot(&snapshot(root, 1)).unwrap().to_hex();
    drop(repo);
    let out = restore_jailed(&env, &id, "jail");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("recorded size"), "{}", stderr(&out));
    let restored = env.path("jail/target/huge");
    assert_eq!(fs::metadata(&restored).unwrap().len(), 13);
    assert_eq!(fs::read(&restored).unwrap(), b"small content");
}

#[test]
fn blobs_swapped_between_contexts_or_packs_are_detected() {
    let env = Env::new();
    env.init();
    let repo = env.open();
    let w = repo.writer(WriterOptions::default());
    let (data, _) = w.add(BlobKind::Data, b"data blob").unwrap();
    let a_tree = tree(&w, vec![file(b"x", vec![data], 9)]);
    // A file whose content is a tree id, a folder whose tree is a data id.
    let root = tree(
        &w,
        vec![
            file(b"file-of-tree", vec![a_tree], 9),
            dir(b"dir-of-data", data),
        ],
    );
    w.finish().unwrap();
    let id = repo.save_snapshot(&snapshot(root, 1)).unwrap().to_hex();
    drop(repo);
    let out = restore_jailed(&env, &id, "jail-ctx");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let check = run_bounded(&env, &["check", "--read-data"]);
    assert_eq!(check.status.code(), Some(1));
    let err = stderr(&check);
    assert!(
        err.contains("/file-of-tree") && err.contains("/dir-of-data"),
        "{err}"
    );

    // Without the key, an attacker can only move objects: swap two packs' contents.
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(3, 300_000)).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let packs: Vec<(String, u64)> = local(&env).list(Kind::Pack).unwrap();
    assert_eq!(packs.len(), 2, "one data and one tree pack");
    let path = |n: &str| env.repo_path().join(Kind::Pack.path(n));
    let (a, b) = (
        fs::read(path(&packs[0].0)).unwrap(),
        fs::read(path(&packs[1].0)).unwrap(),
    );
    fs::write(path(&packs[0].0), &b).unwrap();
    fs::write(path(&packs[1].0), &a).unwrap();
    let check = run_bounded(&env, &["check", "--read-data"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stderr(&check).contains(&packs[0].0), "{}", stderr(&check));
    let out = restore_jailed(&env, "latest", "jail-swap");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn replayed_snapshots_and_stale_index_objects() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("one"), pseudo_random(11, 200_000)).unwrap();
    let s1 = env.backup(&[src.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let index_after_1: Vec<(String, u64)> = local(&env).list(Kind::Index).unwrap();
    fs::write(src.join("two"), pseudo_random(12, 200_000)).unwrap();
    let s2 = env.backup(&[src.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = local(&env);
    let s1_bytes = b.get(Kind::Snapshot, &s1).unwrap();

    // An identical copy is harmless: storing it again is refused, replaying it after deletion
    // brings back exactly the snapshot that was there.
    assert!(b
        .put(Kind::Snapshot, &s1, &s1_bytes, Temperature::Hot)
        .unwrap_err()
        .is_already_exists());
    b.delete(Kind::Snapshot, &s1).unwrap();
    b.put(Kind::Snapshot, &s1, &s1_bytes, Temperature::Hot)
        .unwrap();
    assert!(run_bounded(&env, &["check", "--read-data"])
        .status
        .success());
    let t = env.path("t1");
    env.ok(&["restore", &s1, "--target", t.to_str().unwrap()]);

    // A snapshot whose name does not match its content is rejected wherever it is read.
    b.delete(Kind::Snapshot, &s2).unwrap();
    b.put(Kind::Snapshot, &s2, &s1_bytes, Temperature::Hot)
        .unwrap();
    // (`snapshots` and `restore` may still use s2's local cached copy, which is the authentic
    // one; `check` reads the repository itself and must report the tampered object.)
    let check = run_bounded(&env, &["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stderr(&check).contains(&s2), "{}", stderr(&check));
    b.delete(Kind::Snapshot, &s2).unwrap();

    // A stale index object replayed after its pack was removed: check names the pack.
    let stale = &index_after_1[0].0;
    let stale_bytes = b.get(Kind::Index, stale).unwrap();
    let repo = env.open();
    let obj = repo.load_index_object(stale).unwrap();
    drop(repo);
    let gone = obj.packs[0].pack.to_hex();
    b.delete(Kind::Pack, &gone).unwrap();
    b.delete(Kind::Index, stale).unwrap();
    b.put(Kind::Index, stale, &stale_bytes, Temperature::Hot)
        .unwrap();
    let check = run_bounded(&env, &["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stderr(&check).contains(&gone), "{}", stderr(&check));
}

#[test]
fn absolute_symlinks_out_of_the_target_are_never_followed() {
    let env = Env::new();
    env.init();
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let repo = env.open();
    let w = repo.writer(WriterOptions::default());
    let (blob, _) = w.add(BlobKind::Data, b"should stay inside").unwrap();
    let mut link = Node::new(b"esc".to_vec(), NodeKind::Symlink);
    link.link_target = outside.as_os_str().as_encoded_bytes().to_vec();
    let first = tree(&w, vec![link]);
    // A second snapshot where the same name is a folder, and a file: restored over the first.
    let inner = tree(&w, vec![file(b"f", vec![blob], 18)]);
    let second = tree(&w, vec![dir(b"esc", inner)]);
    let third = tree(&w, vec![file(b"esc", vec![blob], 18)]);
    w.finish().unwrap();
    let ids = save_snapshots(&repo, &[first, second, third]);
    drop(repo);
    let out = restore_jailed(&env, &ids[0], "jail");
    assert!(out.status.success(), "{}", stderr(&out));
    let esc = env.path("jail/target/esc");
    assert_eq!(fs::read_link(&esc).unwrap(), outside);
    // A folder of the same name is refused, a file replaces the link: nothing goes through it.
    let out = restore_jailed(&env, &ids[1], "jail");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("esc"), "{}", stderr(&out));
    let out = restore_jailed(&env, &ids[2], "jail");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!fs::symlink_metadata(&esc).unwrap().file_type().is_symlink());
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote outside"
    );
    assert!(Path::new(&outside).read_dir().unwrap().next().is_none());
}

#[test]
fn a_file_equal_to_a_tree_plaintext_and_that_tree_both_restore() {
    // An empty folder's tree plaintext is the two bytes 01 00; a file with that content has the
    // same (keyed) id. Each must be stored as its own kind, in either order.
    assert_eq!(Tree::default().encode(), [1u8, 0]);
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    let s1 = env.backup(&[src.to_str().unwrap()]);
    let exp1 = env.path("exp1");
    copy_tree(&src, &exp1);
    fs::write(src.join("a-file"), [1u8, 0]).unwrap();
    fs::create_dir_all(src.join("z/empty-too")).unwrap();
    fs::write(src.join("z/b-file"), [1u8, 0]).unwrap();
    let s2 = env.backup(&[src.to_str().unwrap()]);
    let exp2 = env.path("exp2");
    copy_tree(&src, &exp2);
    assert!(run_bounded(&env, &["check", "--read-data"])
        .status
        .success());
    for (s, exp) in [(s1, exp1), (s2, exp2)] {
        let id = s["snapshot_id"].as_str().unwrap();
        let t = env.path(&format!("t-{id}"));
        env.ok(&["restore", id, "--target", t.to_str().unwrap()]);
        assert_same_content(&exp, &restored(&t, &src));
    }
    // The other order, in a fresh repository: the file's chunk is stored before the tree.
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("b-empty")).unwrap();
    fs::write(src.join("a-file"), [1u8, 0]).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    assert!(run_bounded(&env, &["check", "--read-data"])
        .status
        .success());
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_content(&src, &restored(&t, &src));
}
