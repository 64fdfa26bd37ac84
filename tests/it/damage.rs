//! Damage is detected and named: a flipped byte in a pack, a deleted pack.

use std::fs;
use std::path::PathBuf;

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
