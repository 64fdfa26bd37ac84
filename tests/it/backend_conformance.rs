//! One conformance suite for every `Backend`: the memory, local and S3 backends must agree on
//! put/get/range/stat/list/delete semantics, staged (streamed) objects, no-overwrite and
//! not-found behaviour.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use backup_to_s3::backend::local::LocalBackend;
use backup_to_s3::backend::mem::MemBackend;
use backup_to_s3::backend::{Backend, Counting, Kind, Temperature};
use backup_to_s3::id::Id;
use backup_to_s3::repo::DynBackend;

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A 64-hex-digit name like the repository's ids.
pub fn hex_name(seed: u64) -> String {
    pattern(seed, 32)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sorted(mut v: Vec<(String, u64)>) -> Vec<(String, u64)> {
    v.sort();
    v
}

/// The suite, for backends where raw stray files cannot be planted.
pub fn conformance(b: &dyn Backend) {
    conformance_with(b, &|_| {});
}

/// The suite; `plant(path)` writes a raw stray object at `path` relative to the repository
/// root (a temp file left by a crashed writer), which `list` must not report.
pub fn conformance_with(b: &dyn Backend, plant: &dyn Fn(&str)) {
    b.create().unwrap();
    b.create().expect("create is idempotent");
    assert!(!b.location().is_empty());

    // Missing objects.
    let missing = hex_name(999);
    assert!(b.get(Kind::Index, &missing).unwrap_err().is_not_found());
    assert!(b
        .get_range(Kind::Index, &missing, 0, 1)
        .unwrap_err()
        .is_not_found());
    assert_eq!(b.stat(Kind::Index, &missing).unwrap(), None);
    b.delete(Kind::Index, &missing)
        .expect("deleting a missing object is fine");
    assert!(b.list(Kind::Pack).unwrap().is_empty());
    assert!(b.list(Kind::Config).unwrap().is_empty());

    // Put, get, stat, no overwrite.
    let data = pattern(1, 1000);
    let idx = hex_name(1);
    b.put(Kind::Index, &idx, &data, Temperature::Hot).unwrap();
    assert_eq!(b.get(Kind::Index, &idx).unwrap(), data);
    assert_eq!(b.stat(Kind::Index, &idx).unwrap(), Some(1000));
    let e = b
        .put(Kind::Index, &idx, b"other bytes", Temperature::Hot)
        .unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert!(e.to_string().contains(&idx), "error names the object: {e}");
    assert_eq!(b.get(Kind::Index, &idx).unwrap(), data, "not overwritten");
    // The same name under another kind is another object.
    assert!(b.get(Kind::Snapshot, &idx).unwrap_err().is_not_found());

    // Ranges.
    assert_eq!(
        b.get_range(Kind::Index, &idx, 10, 100).unwrap(),
        &data[10..110]
    );
    assert_eq!(b.get_range(Kind::Index, &idx, 0, 1000).unwrap(), data);
    assert_eq!(
        b.get_range(Kind::Index, &idx, 999, 1).unwrap(),
        &data[999..]
    );
    assert_eq!(
        b.get_range(Kind::Index, &idx, 1000, 0).unwrap(),
        Vec::<u8>::new()
    );
    for (off, len) in [(990, 20), (1000, 1), (2000, 10), (1001, 0), (0, 1001)] {
        let e = b.get_range(Kind::Index, &idx, off, len).unwrap_err();
        assert!(
            !e.is_not_found() && !e.is_transient(),
            "range {off}+{len}: {e}"
        );
    }

    // Zero-length objects.
    let empty = hex_name(2);
    b.put(Kind::Snapshot, &empty, b"", Temperature::Hot)
        .unwrap();
    assert_eq!(b.get(Kind::Snapshot, &empty).unwrap(), Vec::<u8>::new());
    assert_eq!(b.stat(Kind::Snapshot, &empty).unwrap(), Some(0));
    assert_eq!(
        b.get_range(Kind::Snapshot, &empty, 0, 0).unwrap(),
        Vec::<u8>::new()
    );
    assert!(b
        .put(Kind::Snapshot, &empty, b"", Temperature::Hot)
        .unwrap_err()
        .is_already_exists());
    assert_eq!(b.list(Kind::Snapshot).unwrap(), vec![(empty.clone(), 0)]);

    // Config is a single object at the root.
    b.put(Kind::Config, "config", b"cfg", Temperature::Hot)
        .unwrap();
    assert_eq!(
        b.list(Kind::Config).unwrap(),
        vec![("config".to_string(), 3)]
    );
    assert_eq!(b.get(Kind::Config, "config").unwrap(), b"cfg");

    // Packs fan out over two-hex-digit folders; strays are not listed.
    let mut packs = BTreeMap::new();
    for seed in 10..16u64 {
        let name = hex_name(seed);
        let body = pattern(seed, 100 + seed as usize);
        b.put(Kind::Pack, &name, &body, Temperature::Cold).unwrap();
        packs.insert(name, body);
    }
    let first = packs.keys().next().unwrap().clone();
    plant(&format!("data/{}/.tmp-{first}-0123", &first[..2]));
    plant(&format!("index/.tmp-{idx}-4567"));
    plant(&format!("snapshots/.tmp-{empty}-89ab"));
    let expect: Vec<_> = packs
        .iter()
        .map(|(n, d)| (n.clone(), d.len() as u64))
        .collect();
    assert_eq!(sorted(b.list(Kind::Pack).unwrap()), expect);
    assert_eq!(b.list(Kind::Index).unwrap(), vec![(idx.clone(), 1000)]);
    assert_eq!(b.list(Kind::Snapshot).unwrap(), vec![(empty.clone(), 0)]);
    assert!(b.list(Kind::Key).unwrap().is_empty());
    for (n, d) in &packs {
        assert_eq!(&b.get(Kind::Pack, n).unwrap(), d);
    }

    // A large object (20 MiB), whole and in ranges.
    let big_name = hex_name(20);
    let big = pattern(20, 20 << 20);
    b.put(Kind::Pack, &big_name, &big, Temperature::Cold)
        .unwrap();
    assert_eq!(b.stat(Kind::Pack, &big_name).unwrap(), Some(20 << 20));
    assert!(
        b.get(Kind::Pack, &big_name).unwrap() == big,
        "20 MiB round trip"
    );
    let (off, len) = (7 << 20, 5 << 20);
    assert!(
        b.get_range(Kind::Pack, &big_name, off, len).unwrap()
            == big[off as usize..(off + len) as usize]
    );

    // Delete and delete_many (missing names included).
    b.delete(Kind::Pack, &first).unwrap();
    assert_eq!(b.stat(Kind::Pack, &first).unwrap(), None);
    assert!(b.get(Kind::Pack, &first).unwrap_err().is_not_found());
    b.delete(Kind::Pack, &first).expect("second delete is fine");
    let mut doomed: Vec<String> = packs.keys().skip(1).take(3).cloned().collect();
    doomed.push(missing.clone());
    b.delete_many(Kind::Pack, &doomed).unwrap();
    b.delete_many(Kind::Pack, &[]).unwrap();
    let mut left: Vec<_> = packs
        .iter()
        .skip(4)
        .map(|(n, d)| (n.clone(), d.len() as u64))
        .collect();
    left.push((big_name.clone(), 20 << 20));
    assert_eq!(sorted(b.list(Kind::Pack).unwrap()), sorted(left));
    // A deleted name can be written again.
    b.put(Kind::Pack, &first, b"again", Temperature::Cold)
        .unwrap();
    assert_eq!(b.get(Kind::Pack, &first).unwrap(), b"again");

    staged_objects(b);
}

/// Staged objects: written in pieces, named at the commit, with the semantics of `put`.
fn staged_objects(b: &dyn Backend) {
    let listed = sorted(b.list(Kind::Pack).unwrap());
    // Dropped before the commit: nothing is stored.
    let mut s = b.stage(Kind::Pack, Temperature::Cold, 1 << 20).unwrap();
    s.write(b"abandoned").unwrap();
    drop(s);
    assert_eq!(sorted(b.list(Kind::Pack).unwrap()), listed);

    // Streamed in uneven pieces, named by the hash of the whole.
    let body = pattern(30, (3 << 20) + 5);
    let mut s = b.stage(Kind::Pack, Temperature::Cold, body.len()).unwrap();
    assert!(s.is_empty());
    for piece in body.chunks((1 << 19) + 7) {
        s.write(piece).unwrap();
    }
    assert_eq!(s.len(), body.len() as u64);
    let name = Id::of_object(&body).to_hex();
    // Not an object before the commit.
    assert_eq!(sorted(b.list(Kind::Pack).unwrap()), listed);
    b.commit(s, &name).unwrap();
    assert!(
        b.get(Kind::Pack, &name).unwrap() == body,
        "staged round trip"
    );
    assert_eq!(b.stat(Kind::Pack, &name).unwrap(), Some(body.len() as u64));

    // An existing name is never replaced.
    let mut s = b.stage(Kind::Pack, Temperature::Cold, 16).unwrap();
    s.write(b"other bytes").unwrap();
    let e = b.commit(s, &name).unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert!(b.get(Kind::Pack, &name).unwrap() == body, "not overwritten");

    // Other kinds, empty objects.
    let ix = hex_name(31);
    let s = b.stage(Kind::Index, Temperature::Hot, 0).unwrap();
    b.commit(s, &ix).unwrap();
    assert_eq!(b.get(Kind::Index, &ix).unwrap(), Vec::<u8>::new());
    let mut expect = listed;
    expect.push((name, body.len() as u64));
    assert_eq!(sorted(b.list(Kind::Pack).unwrap()), sorted(expect));
}

#[test]
fn mem_backend_conforms() {
    conformance(&MemBackend::new());
}

#[test]
fn local_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(dir.path().join("repo"));
    let root = b.root().to_path_buf();
    conformance_with(&b, &|path| {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, b"stray").unwrap();
    });
}

/// Every file under `dir`, relative paths, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A local staged object is a temporary file (not an object) until the commit links it into
/// place; nothing of it stays behind, whether committed, refused or dropped.
#[test]
fn local_staged_objects_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    // Through the layers the repository uses: Arc and Counting forward to the local sink.
    let b = Counting::new(Arc::new(LocalBackend::new(&root)) as DynBackend);
    b.create().unwrap();

    let mut s = b.stage(Kind::Pack, Temperature::Cold, 0).unwrap();
    assert!(!s.is_in_memory(), "the local backend streams to a file");
    s.write(b"partial").unwrap();
    let tmp = files_under(&root.join("data"));
    assert_eq!(tmp.len(), 1, "{tmp:?}");
    assert!(tmp[0].starts_with(".tmp-"), "{tmp:?}");
    assert!(b.list(Kind::Pack).unwrap().is_empty());
    drop(s);
    assert!(files_under(&root.join("data")).is_empty());

    let body = pattern(40, 100_000);
    let name = Id::of_object(&body).to_hex();
    let mut s = b.stage(Kind::Pack, Temperature::Cold, 0).unwrap();
    s.write(&body[..10]).unwrap();
    s.write(&body[10..]).unwrap();
    b.commit(s, &name).unwrap();
    let stats = b.stats();
    assert_eq!((stats.put, stats.bytes_up), (1, body.len() as u64));
    let path = format!("{}/{name}", &name[..2]);
    assert_eq!(files_under(&root.join("data")), vec![path.clone()]);

    let mut s = b.stage(Kind::Pack, Temperature::Cold, 0).unwrap();
    s.write(b"other").unwrap();
    assert!(b.commit(s, &name).unwrap_err().is_already_exists());
    let mut s = b.stage(Kind::Pack, Temperature::Cold, 0).unwrap();
    s.write(b"other").unwrap();
    assert!(b.commit(s, "not/a/name").is_err());
    assert_eq!(files_under(&root.join("data")), vec![path.clone()]);
    assert_eq!(std::fs::read(root.join("data").join(&path)).unwrap(), body);
}

#[cfg(feature = "s3")]
#[test]
fn s3_backend_conforms() {
    let server = crate::s3_server::start();
    let b = server.backend("conformance");
    let opts = b.options().clone();
    conformance_with(&b, &|path| server.plant(&opts, path));
}
