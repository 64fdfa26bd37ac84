//! Fault injection between the S3 backend and the test server: a small HTTP proxy (see
//! `proxy`) answers `503 SlowDown`, `501 NotImplemented` (to conditional writes), or drops the
//! connection mid-request or mid-response, for a chosen subset of requests.

mod proxy;

use std::net::TcpListener;
use std::time::Duration;

use backup_to_s3::backend::retry::{Retry, RetryPolicy};
use backup_to_s3::backend::s3::{S3Backend, S3Options, MIN_PART_SIZE};
use backup_to_s3::backend::{Backend, BackendError, Kind, Temperature};

use crate::backend_conformance::{conformance_with, hex_name, pattern};
use crate::s3_server::{start, TestS3};
use proxy::{Fault, FaultProxy};

/// A bucket created directly on the server, and options reaching it through `proxy`.
fn via_proxy(server: &TestS3, proxy: &FaultProxy, tag: &str) -> S3Options {
    let direct = server.backend(tag);
    S3Options {
        max_attempts: 1,
        ..server.options_via(&proxy.endpoint, &direct.options().bucket)
    }
}

const ALL: [Fault; 3] = [Fault::SlowDown, Fault::DropRequest, Fault::DropResponse];

#[test]
fn s3_retry_rides_out_injected_faults() {
    let server = start();
    let proxy = FaultProxy::start(server.addr);
    // SDK retries off (max_attempts 1): the Retry decorator alone must cope.
    let opts = via_proxy(server, &proxy, "faults");
    let policy = RetryPolicy {
        max_attempts: 8,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(50),
    };
    let b = Retry::with_policy(S3Backend::new(opts).unwrap(), policy);
    proxy.set_faults(3, &ALL);

    let objects: Vec<(Kind, String, Vec<u8>)> = (0..24u64)
        .map(|i| {
            let kind = if i % 3 == 0 { Kind::Index } else { Kind::Pack };
            let len = (pattern(i, 4).iter().map(|&b| b as usize).sum::<usize>() * 257) % 300_000;
            (kind, hex_name(100 + i), pattern(100 + i, len))
        })
        .collect();
    for (kind, name, data) in &objects {
        match b.put(*kind, name, data, Temperature::Cold) {
            // The first attempt stored it but its answer was lost: the retry finds it.
            Err(BackendError::AlreadyExists { .. }) | Ok(()) => {}
            Err(e) => panic!("put {kind}/{name}: {e}"),
        }
    }
    let mut packs = b.list(Kind::Pack).unwrap();
    packs.sort();
    let mut want: Vec<_> = objects
        .iter()
        .filter(|o| o.0 == Kind::Pack)
        .map(|(_, n, d)| (n.clone(), d.len() as u64))
        .collect();
    want.sort();
    assert_eq!(packs, want);
    for (kind, name, data) in &objects {
        assert!(
            b.get(*kind, name).unwrap() == *data,
            "{kind}/{name} byte-exact"
        );
        assert_eq!(b.stat(*kind, name).unwrap(), Some(data.len() as u64));
        if data.len() > 10 {
            let (off, len) = (data.len() as u64 / 3, data.len() as u64 / 2);
            let part = b.get_range(*kind, name, off, len).unwrap();
            assert!(part == data[off as usize..(off + len) as usize]);
        }
    }
    let names: Vec<String> = want.iter().map(|(n, _)| n.clone()).collect();
    b.delete_many(Kind::Pack, &names).unwrap();
    assert!(b.list(Kind::Pack).unwrap().is_empty());
    assert!(proxy.faults() >= 30, "faults injected: {}", proxy.faults());
    assert!(
        b.retries() >= proxy.faults() / 2,
        "retries {} for {} faults",
        b.retries(),
        proxy.faults()
    );
}

#[test]
fn s3_faults_without_retry_are_transient_and_name_the_object() {
    let server = start();
    let proxy = FaultProxy::start(server.addr);
    let opts = via_proxy(server, &proxy, "nofaults");
    let direct = S3Backend::new(server.options(&opts.bucket)).unwrap();
    let b = S3Backend::new(opts).unwrap();
    let name = hex_name(5);
    direct
        .put(Kind::Pack, &name, &pattern(5, 50_000), Temperature::Cold)
        .unwrap();
    for fault in ALL {
        proxy.set_faults(1, &[fault]);
        let other = hex_name(6);
        let errors = [
            b.put(Kind::Pack, &other, b"new", Temperature::Cold)
                .unwrap_err(),
            b.get(Kind::Pack, &name).unwrap_err(),
            b.get_range(Kind::Pack, &name, 100, 1000).unwrap_err(),
            b.stat(Kind::Pack, &name).unwrap_err(),
        ];
        for e in errors {
            assert!(e.is_transient(), "{fault:?}: {e}");
            assert!(e.to_string().starts_with("pack/"), "{fault:?}: {e}");
            assert!(
                e.to_string().contains(&name) || e.to_string().contains(&other),
                "{fault:?}: {e}"
            );
        }
        let e = b.list(Kind::Index).unwrap_err();
        assert!(
            e.is_transient() && e.to_string().starts_with("index/"),
            "{fault:?}: {e}"
        );
    }
    proxy.set_faults(0, &[]);
    assert!(b.get(Kind::Pack, &name).unwrap() == pattern(5, 50_000));
}

#[test]
fn s3_conditional_put_falls_back_after_501() {
    let server = start();
    let proxy = FaultProxy::start(server.addr);
    proxy.reject_conditional(true);
    let opts = S3Options {
        multipart_threshold: 6 << 20,
        ..via_proxy(server, &proxy, "fallback")
    };

    let b = S3Backend::new(opts.clone()).unwrap();
    b.put(Kind::Index, &hex_name(1), b"one", Temperature::Hot)
        .unwrap();
    assert!(!b.uses_conditional_put(), "fallback remembered");
    assert!(b
        .put(Kind::Index, &hex_name(1), b"two", Temperature::Hot)
        .unwrap_err()
        .is_already_exists());
    b.put(Kind::Index, &hex_name(2), b"three", Temperature::Hot)
        .unwrap();
    assert_eq!(
        proxy.conditional_seen(),
        1,
        "only the first put tried If-None-Match"
    );
    assert_eq!(b.get(Kind::Index, &hex_name(1)).unwrap(), b"one");

    // Multipart: CompleteMultipartUpload gets the 501 and is completed without the header.
    let mp = S3Backend::new(opts.clone()).unwrap();
    let big = pattern(9, 2 * MIN_PART_SIZE as usize + 77);
    mp.put(Kind::Pack, &hex_name(9), &big, Temperature::Cold)
        .unwrap();
    assert!(!mp.uses_conditional_put());
    assert!(mp
        .put(Kind::Pack, &hex_name(9), &big, Temperature::Cold)
        .unwrap_err()
        .is_already_exists());
    assert!(mp.get(Kind::Pack, &hex_name(9)).unwrap() == big);
    assert_eq!(proxy.conditional_seen(), 2);

    // The whole conformance suite passes on the fallback path too.
    let fresh = S3Options {
        prefix: "suite".into(),
        ..opts
    };
    let suite = S3Backend::new(fresh.clone()).unwrap();
    conformance_with(&suite, &|path| server.plant(&fresh, path));
    assert!(!suite.uses_conditional_put());
}

#[test]
fn s3_sdk_retries_alone_ride_out_dropped_connections() {
    let server = start();
    let proxy = FaultProxy::start(server.addr);
    // Default SDK attempts (3), no Retry decorator: every 2nd request drops.
    let opts = S3Options {
        max_attempts: 3,
        ..via_proxy(server, &proxy, "sdkretry")
    };
    let b = S3Backend::new(opts).unwrap();
    proxy.set_faults(2, &[Fault::DropRequest]);
    for i in 0..4u64 {
        b.put(
            Kind::Index,
            &hex_name(i),
            &pattern(i, 5000),
            Temperature::Hot,
        )
        .unwrap();
    }
    for i in 0..4u64 {
        assert_eq!(b.get(Kind::Index, &hex_name(i)).unwrap(), pattern(i, 5000));
    }
    assert!(proxy.faults() >= 4, "faults injected: {}", proxy.faults());
    let sent = b.wire_stats();
    assert!(
        sent.put + sent.get >= 8 + proxy.faults(),
        "SDK retries are counted: {sent:?}"
    );
}

#[test]
fn s3_unreachable_server_is_transient_and_bad_endpoint_refused() {
    let server = start();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let opts = S3Options {
        max_attempts: 1,
        ..server.options_via(&format!("http://{closed}"), "nobucket")
    };
    let b = S3Backend::new(opts.clone()).unwrap();
    let e = b.get(Kind::Snapshot, &hex_name(1)).unwrap_err();
    assert!(
        e.is_transient() && e.to_string().starts_with("snapshot/"),
        "{e}"
    );
    let bad = S3Options {
        endpoint: Some(closed.to_string()),
        ..opts
    };
    let e = S3Backend::new(bad).err().expect("endpoint without scheme");
    assert!(e.to_string().contains("http://"), "{e}");
}

#[test]
fn s3_retry_restarts_failed_multipart_uploads() {
    let server = start();
    let proxy = FaultProxy::start(server.addr);
    let opts = S3Options {
        multipart_threshold: 6 << 20,
        multipart_part_size: MIN_PART_SIZE,
        ..via_proxy(server, &proxy, "mpfaults")
    };
    let policy = RetryPolicy {
        max_attempts: 8,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(50),
    };
    let b = Retry::with_policy(S3Backend::new(opts).unwrap(), policy);
    let data = pattern(77, 3 * MIN_PART_SIZE as usize + 1);

    // Request 1 checks for the object, 2 creates the upload, 3–6 are the parts: one part
    // answers 503 once, the upload is aborted and the retry uploads everything again.
    proxy.set_faults_limited(3, &[Fault::SlowDown], 1);
    b.put(Kind::Pack, &hex_name(1), &data, Temperature::Cold)
        .unwrap();
    assert_eq!((proxy.faults(), b.retries()), (1, 1));
    assert!(b.get(Kind::Pack, &hex_name(1)).unwrap() == data);

    // Request 7 completes the upload: the object is stored but the answer is lost, so the
    // retry finds it (AlreadyExists, which callers take as success).
    proxy.set_faults_limited(7, &[Fault::DropResponse], 1);
    match b.put(Kind::Pack, &hex_name(2), &data, Temperature::Cold) {
        Ok(()) | Err(BackendError::AlreadyExists { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    assert_eq!(proxy.faults(), 2);
    assert!(b.get(Kind::Pack, &hex_name(2)).unwrap() == data);
}

#[test]
fn s3_conditional_multipart_completion_never_overwrites() {
    let server = start();
    let proxy = FaultProxy::start(server.addr);
    let opts = S3Options {
        multipart_threshold: 6 << 20,
        multipart_part_size: MIN_PART_SIZE,
        ..via_proxy(server, &proxy, "mprace")
    };
    let direct = S3Backend::new(S3Options {
        endpoint: Some(server.endpoint.clone()),
        ..opts.clone()
    })
    .unwrap();
    let first = pattern(1, 2 * MIN_PART_SIZE as usize + 5);
    direct
        .put(Kind::Pack, &hex_name(1), &first, Temperature::Cold)
        .unwrap();
    // The HEAD before the upload sees nothing (as if another writer raced us), so only the
    // conditional CompleteMultipartUpload stands between the upload and an overwrite.
    proxy.hide_heads(true);
    let b = S3Backend::new(opts).unwrap();
    let second = pattern(2, first.len());
    let e = b
        .put(Kind::Pack, &hex_name(1), &second, Temperature::Cold)
        .unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert!(b.uses_conditional_put());
    proxy.hide_heads(false);
    assert!(
        b.get(Kind::Pack, &hex_name(1)).unwrap() == first,
        "not overwritten"
    );
    // The upload was aborted after the refusal: create, 3 parts, complete, abort.
    assert_eq!(b.wire_stats().delete, 1, "{:?}", b.wire_stats());
}
