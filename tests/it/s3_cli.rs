//! The real binary against the real S3 server (s3s-fs on 127.0.0.1): init, backup, restore,
//! check, request accounting, a wrong secret key.

use std::fs;

use crate::common::*;
use crate::s3_server::{self, ACCESS_KEY, SECRET_KEY};

fn s3_env(env: &Env, bucket: &str) -> std::process::Command {
    let server = s3_server::start();
    let mut c = env.cmd();
    c.env("BACKUP_TO_S3_REPOSITORY", format!("s3://{bucket}/backups"))
        .env("BACKUP_TO_S3_S3_ENDPOINT", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    c
}

fn run_ok(mut c: std::process::Command, args: &[&str]) -> String {
    let out = c.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn backup_restore_check_through_s3() {
    let env = Env::new();
    let bucket = s3_server::start().bucket("cli");
    run_ok(
        s3_env(&env, &bucket),
        &["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"],
    );
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/big"), pseudo_random(21, 5 << 20)).unwrap();
    fs::write(src.join("small"), b"tiny").unwrap();
    let first = last_json(&run_ok(
        s3_env(&env, &bucket),
        &["backup", "--json", src.to_str().unwrap()],
    ));
    assert!(first["requests"]["PUT"].as_u64().unwrap() >= 3, "{first}");
    assert!(first["bytes_up"].as_u64().unwrap() > 5 << 20);
    fs::write(src.join("small"), b"changed").unwrap();
    let second = last_json(&run_ok(
        s3_env(&env, &bucket),
        &["backup", "--json", src.to_str().unwrap()],
    ));
    assert_eq!(second["files_changed"], 1);
    assert!(second["bytes_up"].as_u64().unwrap() < 64 << 10, "{second}");
    // A no-op backup costs a handful of requests and one LIST (of the index, for prune safety).
    let noop = last_json(&run_ok(
        s3_env(&env, &bucket),
        &["backup", "--json", src.to_str().unwrap()],
    ));
    eprintln!("no-op backup: {noop}");
    assert_eq!(noop["bytes_read"], 0);
    assert!(noop["requests"]["LIST"].as_u64().unwrap() <= 1, "{noop}");
    let total: u64 = ["PUT", "GET", "HEAD", "LIST", "DELETE"]
        .iter()
        .map(|k| noop["requests"][k].as_u64().unwrap())
        .sum();
    // GET config, GET key, LIST index, HEAD parent, PUT snapshot, and the session's PUT and
    // DELETE (prune safety), with slack for a folder whose metadata changed meanwhile.
    assert!(
        total <= 12,
        "a no-op backup should cost a handful of requests: {noop}"
    );
    let target = env.path("out");
    run_ok(
        s3_env(&env, &bucket),
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&src, &restored(&target, &src));
    let report: serde_json::Value = serde_json::from_str(&run_ok(
        s3_env(&env, &bucket),
        &["check", "--read-data", "--json"],
    ))
    .unwrap();
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["requests"]["GET"].as_u64().unwrap() > 0);
}

#[test]
fn wrong_secret_key_is_refused() {
    let env = Env::new();
    let bucket = s3_server::start().bucket("badkey");
    run_ok(
        s3_env(&env, &bucket),
        &["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"],
    );
    let out = s3_env(&env, &bucket)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.to_lowercase().contains("denied") || stderr.contains("signature"),
        "{stderr}"
    );
}

/// Over S3 a pack is read with one request and its blobs opened where they lie in it: a
/// flipped byte is still found, in the right pack, after the pack's name hash was taken.
#[test]
fn flipped_byte_in_an_s3_pack_is_found() {
    let env = Env::new();
    let server = s3_server::start();
    let bucket = server.bucket("flip");
    run_ok(
        s3_env(&env, &bucket),
        &["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"],
    );
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), pseudo_random(33, 3 << 20)).unwrap();
    run_ok(s3_env(&env, &bucket), &["backup", src.to_str().unwrap()]);
    run_ok(s3_env(&env, &bucket), &["check", "--read-data"]);

    // The largest object in the bucket is the data pack.
    let mut objects = Vec::new();
    let mut dirs = vec![server.root.join(&bucket)];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                objects.push((fs::metadata(&p).unwrap().len(), p));
            }
        }
    }
    let (_, pack) = objects.into_iter().max().unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[1 << 20] ^= 0x04;
    fs::write(&pack, &bytes).unwrap();

    let out = s3_env(&env, &bucket)
        .args(["check", "--read-data", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = pack.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(report["damaged_packs"][0], name.as_str(), "{report}");
    assert!(
        report["errors"].to_string().contains("is damaged"),
        "the blob that holds the byte is named: {report}"
    );
}
