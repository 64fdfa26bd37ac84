//! Damage is detected and named: a flipped byte in a pack, a deleted pack.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use backup_to_s3::backend::Kind;
use backup_to_s3::id::Id;

use crate::common::*;

fn packs(env: &Env) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for fan in fs::read_dir(env.repo_path().join("data"))
        .unwrap()
        .flatten()
    {
        for p in fs::read_dir(fan.path()).unwrap().flatten() {
            out.push(p.path());
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    out
}

#[test]
fn flipped_byte_is_found_and_the_file_named() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("precious.dat"), pseudo_random(5, 2 << 20)).unwrap();
    fs::write(src.join("other.txt"), b"small").unwrap();
    env.backup(&[src.to_str().unwrap()]);
    assert!(env.run(&["check", "--read-data"]).status.success());
    // The largest pack holds the data of precious.dat; flip one byte inside it.
    let pack = &packs(&env)[0];
    let mut bytes = fs::read(pack).unwrap();
    bytes[1 << 20] ^= 0x01;
    fs::write(pack, &bytes).unwrap();

    let out = env.run(&["check", "--read-data"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("precious.dat"),
        "check must name the affected file: {stderr}"
    );
    let pack_name = pack.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        stderr.contains(&pack_name),
        "check must name the damaged pack: {stderr}"
    );
    assert!(!stderr.contains("other.txt"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(
        &env.run(&["check", "--read-data", "--json"]).stdout,
    ))
    .unwrap();
    assert_eq!(json["damaged_packs"][0], pack_name.as_str());

    // A restore of the damaged file refuses rather than writing wrong bytes.
    let target = env.path("out");
    let r = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("precious.dat"));
}

#[test]
fn missing_pack_is_found_without_reading_data() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(9, 1 << 20)).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    fs::remove_file(&packs(&env)[0]).unwrap();
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(stderr.contains("/f"), "{stderr}");
}

/// Check walks a folder that several snapshots share once when all below it is intact; a damaged
/// file in a shared folder must still be named for every snapshot that holds it, and nothing else.
#[test]
fn damage_in_a_shared_folder_is_named_in_every_snapshot() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(src.join("a/deep")).unwrap();
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("a/deep/hit"), pseudo_random(21, 1 << 20)).unwrap();
    fs::write(src.join("a/intact"), pseudo_random(22, 300 << 10)).unwrap();
    fs::write(src.join("b/intact"), pseudo_random(23, 300 << 10)).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    // A second snapshot with a new root tree; folders a, a/deep and b are shared.
    fs::write(src.join("new"), b"new").unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let files = chunk_locations(&env);
    let hit = files["hit"][0];
    assert!(files["intact"].iter().all(|l| *l != hit));
    let pack = packs(&env)
        .into_iter()
        .find(|p| p.ends_with(hit.pack.to_hex()))
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[(hit.offset + hit.length / 2) as usize] ^= 0x01;
    fs::write(&pack, &bytes).unwrap();

    let report = check_json(&env, &["--read-data"]);
    assert_eq!(report["snapshots_checked"].as_u64(), Some(2), "{report:#}");
    let affected: BTreeSet<(String, String)> = report["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let path = a["path"].as_str().unwrap();
            let tail = path.rsplitn(4, '/').take(3).collect::<Vec<_>>().join("<");
            (a["snapshot"].as_str().unwrap().to_string(), tail)
        })
        .collect();
    let snapshots: BTreeSet<&String> = affected.iter().map(|(s, _)| s).collect();
    assert_eq!(snapshots.len(), 2, "named in both snapshots: {report:#}");
    assert!(
        affected.iter().all(|(_, p)| p == "hit<deep<a"),
        "only a/deep/hit: {report:#}"
    );
}

fn check_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let out = env.run(&[&["check", "--json"], args].concat());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn parallel_check_names_exactly_the_damaged_packs_and_files() {
    let env = Env::new();
    env.init_with(&["--pack-size-mib", "1"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        fs::write(src.join(format!("f{i}")), pseudo_random(100 + i, 700 << 10)).unwrap();
    }
    env.backup(&[src.to_str().unwrap()]);
    let files = chunk_locations(&env);
    let data_packs: BTreeSet<Id> = files.values().flatten().map(|l| l.pack).collect();
    assert!(data_packs.len() >= 4, "several packs: {data_packs:?}");

    let clean = check_json(&env, &["--read-data"]);
    assert_eq!(clean["errors"], serde_json::json!([]), "{clean:#}");
    assert_eq!(clean["packs_read"].as_u64(), Some(packs(&env).len() as u64));

    // Flip a byte in the middle of f0's first chunk; remove a pack f0 does not use.
    let hit = files["f0"][0];
    let removed = *data_packs
        .iter()
        .find(|p| files["f0"].iter().all(|l| l.pack != **p))
        .unwrap();
    let path_of = |pack: &Id| {
        let name = pack.to_hex();
        packs(&env)
            .into_iter()
            .find(|p| p.ends_with(&name))
            .unwrap()
    };
    let mut bytes = fs::read(path_of(&hit.pack)).unwrap();
    bytes[(hit.offset + hit.length / 2) as usize] ^= 0x01;
    fs::write(path_of(&hit.pack), &bytes).unwrap();
    fs::remove_file(path_of(&removed)).unwrap();
    let expected: BTreeSet<&str> = files
        .iter()
        .filter(|(_, locs)| locs.iter().any(|l| *l == hit || l.pack == removed))
        .map(|(f, _)| f.as_str())
        .collect();
    assert!(
        expected.len() >= 2 && expected.len() < files.len(),
        "{expected:?}"
    );

    let report = check_json(&env, &["--read-data"]);
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let mut damaged = vec![hit.pack.to_hex(), removed.to_hex()];
    damaged.sort();
    assert_eq!(strings(&report["damaged_packs"]), damaged);
    let affected: BTreeSet<&str> = report["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(affected, expected, "{report:#}");
    let errors = strings(&report["errors"]);
    let named = |what: &str| errors.iter().any(|e| e.contains(what));
    assert!(named(&format!(
        "pack {}: content does not match its name",
        hit.pack
    )));
    assert!(named(&format!(
        "pack {removed} is listed in the index but missing"
    )));
    for e in &errors {
        // Pack errors name only the two packs.
        assert!(
            !e.starts_with("pack ") || damaged.iter().any(|d| e.contains(d)),
            "{e}"
        );
    }
    // The same report in the same order every time, whatever the threads did.
    let again = check_json(&env, &["--read-data"]);
    for k in ["errors", "damaged_packs", "missing_blobs", "affected"] {
        assert_eq!(again[k], report[k], "{k}");
    }

    // Without --read-data (headers only) the missing pack shows, the flipped byte cannot.
    let quick = check_json(&env, &[]);
    assert_eq!(
        strings(&quick["damaged_packs"]),
        [removed.to_hex()],
        "{quick:#}"
    );
}

#[test]
fn a_pack_larger_than_a_read_piece_is_verified_blob_by_blob() {
    // Local check reads packs in 4 MiB pieces and restore in ranges of up to 4 MiB: a 14 MiB
    // pack has blobs that straddle piece boundaries, and every one must still verify.
    let env = Env::new();
    env.init_with(&["--pack-size-mib", "16"]);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let data = pseudo_random(11, 14 << 20);
    fs::write(src.join("big.bin"), &data).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let clean = check_json(&env, &["--read-data"]);
    let blobs = clean["blobs_verified"].as_u64().unwrap();
    assert!(blobs > 8, "{clean}");
    assert_eq!(clean["errors"].as_array().map(Vec::len), Some(0), "{clean}");
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(fs::read(restored(&target, &src).join("big.bin")).unwrap() == data);

    // One flipped byte in the third piece damages exactly one blob.
    let pack = &packs(&env)[0];
    assert!(fs::metadata(pack).unwrap().len() > 12 << 20);
    let mut bytes = fs::read(pack).unwrap();
    bytes[9 << 20] ^= 0x40;
    fs::write(pack, &bytes).unwrap();
    let damaged = check_json(&env, &["--read-data"]);
    assert_eq!(
        damaged["blobs_verified"].as_u64(),
        Some(blobs - 1),
        "{damaged}"
    );
    let pack_name = pack.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(damaged["damaged_packs"][0], pack_name.as_str());
}

#[test]
fn a_pack_listed_by_two_index_objects_is_not_damage() {
    // Two index objects may list one pack (two hosts indexing what a killed run left): check
    // must verify each blob once, not report the second listing as damaged.
    let env = Env::new();
    env.init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(12, 3 << 20)).unwrap();
    env.backup(&[src.to_str().unwrap()]);
    let clean = check_json(&env, &["--read-data"]);
    let repo = env.open();
    let names = repo.backend().list(Kind::Index).unwrap();
    let mut packs = repo.load_index_object(&names[0].0).unwrap().packs;
    // In another order, so the second object is not the first one's bytes.
    packs.reverse();
    repo.write_index(packs, vec![]).unwrap();
    drop(repo);
    assert_eq!(env.open().backend().list(Kind::Index).unwrap().len(), 2);
    let twice = check_json(&env, &["--read-data"]);
    assert_eq!(twice["errors"].as_array().map(Vec::len), Some(0), "{twice}");
    assert_eq!(twice["blobs_verified"], clean["blobs_verified"], "{twice}");
}
