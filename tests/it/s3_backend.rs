//! S3-specific behaviour against the in-process server: multipart uploads, checksum modes,
//! storage classes, credentials errors, pagination and batching, async-runtime misuse.

use backup_to_s3::backend::s3::{S3Backend, S3Options, MIN_PART_SIZE};
use backup_to_s3::backend::{Backend, Kind, Temperature};

use crate::backend_conformance::{hex_name, pattern};
use crate::s3_server::start;

fn backend_with(opts: S3Options) -> S3Backend {
    let b = S3Backend::new(opts).unwrap();
    b.create().unwrap();
    b
}

fn multipart_round_trip(checksum_when_required: bool) {
    let server = start();
    let opts = S3Options {
        multipart_threshold: 6 << 20,
        multipart_part_size: MIN_PART_SIZE,
        checksum_when_required,
        ..server.options(&server.bucket("multipart"))
    };
    let b = backend_with(opts);
    // Three full parts and a short last one.
    let len = 3 * MIN_PART_SIZE as usize + 12_345;
    let data = pattern(7, len);
    let name = hex_name(7);
    let before = b.wire_stats();
    b.put(Kind::Pack, &name, &data, Temperature::Cold).unwrap();
    let sent = b.wire_stats().since(&before);
    // HEAD (exists?), create, 4 parts, complete, HEAD (size check).
    assert_eq!((sent.put, sent.head, sent.get), (6, 2, 0), "{sent:?}");
    assert!(sent.bytes_up >= len as u64, "{sent:?}");
    assert_eq!(b.stat(Kind::Pack, &name).unwrap(), Some(len as u64));
    let before = b.wire_stats();
    assert!(
        b.get(Kind::Pack, &name).unwrap() == data,
        "multipart object round-trips exactly"
    );
    let got = b.wire_stats().since(&before);
    assert_eq!((got.get, got.bytes_down), (1, len as u64), "{got:?}");
    // A range across the first part boundary.
    let off = MIN_PART_SIZE - 100;
    assert_eq!(
        b.get_range(Kind::Pack, &name, off, 200).unwrap(),
        &data[off as usize..off as usize + 200]
    );
    // Multipart uploads do not overwrite either.
    let e = b
        .put(Kind::Pack, &name, &pattern(8, len), Temperature::Cold)
        .unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert!(b.get(Kind::Pack, &name).unwrap() == data);
    assert!(b.uses_conditional_put(), "s3s-fs supports If-None-Match");
    // Small objects still go through a single PUT.
    b.put(Kind::Index, &name, b"small", Temperature::Hot)
        .unwrap();
    assert_eq!(b.get(Kind::Index, &name).unwrap(), b"small");
    assert_eq!(b.list(Kind::Pack).unwrap(), vec![(name, len as u64)]);
}

#[test]
fn s3_multipart_upload_round_trips() {
    multipart_round_trip(false);
}

#[test]
fn s3_multipart_with_checksums_when_required() {
    multipart_round_trip(true);
}

#[test]
fn s3_wrong_secret_is_refused_permanently() {
    let server = start();
    let good = server.backend("creds");
    good.put(Kind::Index, &hex_name(1), b"x", Temperature::Hot)
        .unwrap();
    let mut opts = good.options().clone();
    if let Some(c) = opts.credentials.as_mut() {
        c.secret_access_key = "not-the-secret".into();
    }
    let bad = S3Backend::new(opts).unwrap();
    for e in [
        bad.put(Kind::Index, &hex_name(2), b"x", Temperature::Hot)
            .unwrap_err(),
        bad.get(Kind::Index, &hex_name(1)).unwrap_err(),
        bad.list(Kind::Index).unwrap_err(),
    ] {
        assert!(!e.is_transient(), "{e}");
        assert!(!e.is_not_found(), "{e}");
        assert!(
            e.to_string().contains("access denied: check credentials"),
            "{e}"
        );
    }
    let e = bad.stat(Kind::Index, &hex_name(1)).unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("index/"), "{e}");
}

#[test]
fn s3_storage_class_only_for_cold_objects() {
    let server = start();
    // s3s-fs accepts only STANDARD and REDUCED_REDUNDANCY: a refused class proves the header
    // is sent for cold objects and not for hot ones.
    let bucket = server.bucket("class");
    let ok = backend_with(S3Options {
        storage_class_cold: Some("REDUCED_REDUNDANCY".into()),
        ..server.options(&bucket)
    });
    ok.put(Kind::Pack, &hex_name(1), b"cold", Temperature::Cold)
        .unwrap();
    let odd = backend_with(S3Options {
        storage_class_cold: Some("GLACIER".into()),
        ..server.options(&bucket)
    });
    odd.put(Kind::Index, &hex_name(2), b"hot", Temperature::Hot)
        .unwrap();
    let e = odd
        .put(Kind::Pack, &hex_name(3), b"cold", Temperature::Cold)
        .unwrap_err();
    assert!(
        !e.is_transient() && e.to_string().contains("InvalidStorageClass"),
        "{e}"
    );
    assert_eq!(ok.get(Kind::Pack, &hex_name(1)).unwrap(), b"cold");
}

#[test]
fn s3_list_paginates_and_delete_many_batches() {
    let server = start();
    let b = std::sync::Arc::new(server.backend("many"));
    let n = 1100u64;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in (t..n).step_by(4) {
                    b.put(
                        Kind::Index,
                        &hex_name(i),
                        &i.to_le_bytes(),
                        Temperature::Hot,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let listed = b.list(Kind::Index).unwrap();
    assert_eq!(listed.len(), n as usize, "more than one page of 1000");
    assert!(listed.iter().all(|(_, size)| *size == 8));
    let names: Vec<String> = listed.into_iter().map(|(n, _)| n).collect();
    b.delete_many(Kind::Index, &names).unwrap();
    assert!(b.list(Kind::Index).unwrap().is_empty());
}

#[test]
fn s3_prefixes_keep_repositories_apart() {
    let server = start();
    let bucket = server.bucket("prefix");
    let a = backend_with(S3Options {
        prefix: "a".into(),
        ..server.options(&bucket)
    });
    let root = backend_with(S3Options {
        prefix: String::new(),
        ..server.options(&bucket)
    });
    a.put(Kind::Index, &hex_name(1), b"in a", Temperature::Hot)
        .unwrap();
    root.put(Kind::Index, &hex_name(2), b"at root", Temperature::Hot)
        .unwrap();
    assert_eq!(a.list(Kind::Index).unwrap(), vec![(hex_name(1), 4)]);
    assert_eq!(root.list(Kind::Index).unwrap(), vec![(hex_name(2), 7)]);
    assert_eq!(a.location(), format!("s3://{bucket}/a"));
    assert_eq!(root.location(), format!("s3://{bucket}"));
}

#[test]
fn s3_inside_async_runtime_is_an_error_not_a_panic() {
    let server = start();
    let outside = server.backend("async");
    let opts = outside.options().clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let e = S3Backend::new(opts)
            .err()
            .expect("refused inside a runtime");
        assert!(e.to_string().contains("async runtime"), "{e}");
        let e = outside.get(Kind::Index, &hex_name(1)).unwrap_err();
        assert!(e.to_string().contains("async runtime"), "{e}");
        drop(outside); // dropping inside a runtime must not panic either
    });
}

#[test]
fn s3_endpoint_without_region_needs_no_region_lookup() {
    let server = start();
    let opts = S3Options {
        region: None,
        ..server.options(&server.bucket("noregion"))
    };
    let started = std::time::Instant::now();
    let b = backend_with(opts);
    b.put(Kind::Key, &hex_name(1), b"k", Temperature::Hot)
        .unwrap();
    assert_eq!(b.list(Kind::Key).unwrap(), vec![(hex_name(1), 1)]);
    // No instance-metadata probe (it would take seconds off EC2).
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
