//! Retention policy (ops::retention::apply_policy): table-driven cases over calendar edges —
//! ISO weeks across year ends, short months, time-zone offsets and DST, keep-within
//! boundaries and combined rules.

use backup_to_s3::format::snapshot::Snapshot;
use backup_to_s3::id::Id;
use backup_to_s3::ops::retention::{apply_policy, Policy, Within};

/// A snapshot at a UTC instant with the writer's offset (hours) and tags.
fn snap(n: u8, utc: &str, offset_h: i32, tags: &[&str]) -> (Id, Snapshot) {
    let t: jiff::Timestamp = utc.parse().unwrap();
    let s = Snapshot {
        time_ns: t.as_nanosecond() as i64,
        tz_offset_s: offset_h * 3600,
        hostname: "h".into(),
        username: "u".into(),
        paths: vec!["/p".into()],
        tags: tags.iter().map(|t| t.to_string()).collect(),
        parent: None,
        tree: Id::default(),
        original: None,
        program_version: "test".into(),
        summary: None,
        signature: vec![],
    };
    (Id([n; 32]), s)
}

fn utc(times: &[&str]) -> Vec<(Id, Snapshot)> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| snap(i as u8, t, 0, &[]))
        .collect()
}

/// The indexes (into the input) of the kept snapshots, sorted.
fn kept(snaps: &[(Id, Snapshot)], p: &Policy) -> Vec<u8> {
    let now: jiff::Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
    let mut v: Vec<u8> = apply_policy(snaps, p, now)
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| d.id.0[0])
        .collect();
    v.sort();
    v
}

fn within(s: &str) -> Option<Within> {
    Some(s.parse().unwrap())
}

/// Name, snapshots, policy, indexes kept.
type Case<'a> = (&'a str, &'a [(Id, Snapshot)], Policy, Vec<u8>);

#[test]
fn calendar_cases() {
    let weeks_2020 = utc(&[
        "2020-12-31T12:00:00Z", // Thu, ISO 2020-W53
        "2021-01-03T12:00:00Z", // Sun, ISO 2020-W53
        "2021-01-04T12:00:00Z", // Mon, ISO 2021-W01
    ]);
    let weeks_2024 = utc(&[
        "2024-12-29T12:00:00Z", // Sun, ISO 2024-W52
        "2024-12-30T12:00:00Z", // Mon, ISO 2025-W01
        "2025-01-05T12:00:00Z", // Sun, ISO 2025-W01
    ]);
    let months = utc(&[
        "2024-01-31T10:00:00Z",
        "2024-02-29T10:00:00Z",
        "2024-03-01T10:00:00Z",
        "2024-03-31T10:00:00Z",
    ]);
    let days = utc(&[
        "2024-05-01T08:00:00Z",
        "2024-05-01T20:00:00Z",
        "2024-05-02T08:00:00Z",
        "2024-05-03T08:00:00Z",
        "2024-05-03T09:00:00Z",
        "2024-05-04T23:59:59Z",
    ]);
    let years = utc(&[
        "2021-12-31T23:00:00Z",
        "2022-01-01T01:00:00Z",
        "2022-06-01T00:00:00Z",
        "2023-01-01T00:00:00Z",
    ]);
    let cases: Vec<Case> = vec![
        (
            "last 2",
            &days,
            Policy {
                last: Some(2),
                ..Default::default()
            },
            vec![4, 5],
        ),
        (
            "last unlimited",
            &days,
            Policy {
                last: Some(u32::MAX),
                ..Default::default()
            },
            vec![0, 1, 2, 3, 4, 5],
        ),
        (
            "daily 3: newest per day",
            &days,
            Policy {
                daily: Some(3),
                ..Default::default()
            },
            vec![2, 4, 5],
        ),
        (
            "daily unlimited",
            &days,
            Policy {
                daily: Some(u32::MAX),
                ..Default::default()
            },
            vec![1, 2, 4, 5],
        ),
        (
            "weekly across 2020/21",
            &weeks_2020,
            Policy {
                weekly: Some(2),
                ..Default::default()
            },
            vec![1, 2],
        ),
        (
            "weekly: Dec 30 2024 is 2025-W01",
            &weeks_2024,
            Policy {
                weekly: Some(2),
                ..Default::default()
            },
            vec![0, 2],
        ),
        (
            "monthly with Feb 29",
            &months,
            Policy {
                monthly: Some(2),
                ..Default::default()
            },
            vec![1, 3],
        ),
        (
            "monthly 3",
            &months,
            Policy {
                monthly: Some(3),
                ..Default::default()
            },
            vec![0, 1, 3],
        ),
        (
            "yearly",
            &years,
            Policy {
                yearly: Some(2),
                ..Default::default()
            },
            vec![2, 3],
        ),
        (
            "hourly 3",
            &days,
            Policy {
                hourly: Some(3),
                ..Default::default()
            },
            vec![3, 4, 5],
        ),
        // 1 month before 2024-03-31 10:00 is 2024-02-29 10:00 (end of month clamps), inclusive.
        (
            "within 1m clamps to Feb 29",
            &months,
            Policy {
                within: within("1m"),
                ..Default::default()
            },
            vec![1, 2, 3],
        ),
        (
            "within 30d",
            &months,
            Policy {
                within: within("30d"),
                ..Default::default()
            },
            vec![2, 3],
        ),
        (
            "within 3d",
            &days,
            Policy {
                within: within("3d"),
                ..Default::default()
            },
            vec![2, 3, 4, 5],
        ),
        (
            "within 1w",
            &days,
            Policy {
                within: within("1w"),
                ..Default::default()
            },
            vec![0, 1, 2, 3, 4, 5],
        ),
        (
            "within-daily 2d",
            &days,
            Policy {
                within_daily: within("2d"),
                ..Default::default()
            },
            vec![4, 5],
        ),
        (
            "within-monthly 1y",
            &months,
            Policy {
                within_monthly: within("1y"),
                ..Default::default()
            },
            vec![0, 1, 3],
        ),
        (
            "combined last 1 + weekly 1 + yearly 5",
            &years,
            Policy {
                last: Some(1),
                weekly: Some(1),
                yearly: Some(5),
                ..Default::default()
            },
            vec![0, 2, 3],
        ),
        (
            "combined daily 1 + monthly 2",
            &months,
            Policy {
                daily: Some(1),
                monthly: Some(2),
                ..Default::default()
            },
            vec![1, 3],
        ),
    ];
    for (name, snaps, policy, want) in cases {
        assert_eq!(kept(snaps, &policy), want, "case {name:?}");
    }
}

#[test]
fn buckets_use_each_snapshots_own_offset() {
    // UTC the same day; in the writer's local time (+02:00) the first is already the next day.
    let snaps = vec![
        snap(0, "2024-06-01T21:00:00Z", 0, &[]),
        snap(1, "2024-06-01T22:30:00Z", 2, &[]),
    ];
    let p = Policy {
        daily: Some(5),
        ..Default::default()
    };
    assert_eq!(kept(&snaps, &p), vec![0, 1]);
    // The same instants written in UTC share a day: only the newer is kept.
    let same = utc(&["2024-06-01T21:00:00Z", "2024-06-01T22:30:00Z"]);
    assert_eq!(kept(&same, &p), vec![1]);
    // DST change (Europe/Berlin, 2024-03-31): 01:30 CET (+1) and 03:30 CEST (+2) are two hours.
    let dst = vec![
        snap(0, "2024-03-31T00:30:00Z", 1, &[]),
        snap(1, "2024-03-31T01:30:00Z", 2, &[]),
    ];
    let hourly = Policy {
        hourly: Some(2),
        ..Default::default()
    };
    assert_eq!(kept(&dst, &hourly), vec![0, 1]);
    // Autumn back (2024-10-27): 02:30 CEST (+2) and 02:10 CET (+1) fall in the same local hour.
    let back = vec![
        snap(0, "2024-10-27T00:30:00Z", 2, &[]),
        snap(1, "2024-10-27T01:10:00Z", 1, &[]),
    ];
    assert_eq!(kept(&back, &hourly), vec![1]);
}

#[test]
fn tags_protection_and_reasons() {
    let snaps = vec![
        snap(0, "2024-01-01T00:00:00Z", 0, &["protected"]),
        snap(1, "2024-01-02T00:00:00Z", 0, &["important"]),
        snap(2, "2024-01-03T00:00:00Z", 0, &[]),
        snap(3, "2024-01-04T00:00:00Z", 0, &[]),
    ];
    let p = Policy {
        last: Some(1),
        daily: Some(2),
        tags: vec!["important".into()],
        ..Default::default()
    };
    let now: jiff::Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
    let d = apply_policy(&snaps, &p, now);
    let by = |n: u8| d.iter().find(|x| x.id.0[0] == n).unwrap();
    assert_eq!(by(3).reasons, vec!["last", "daily"]);
    assert_eq!(by(2).reasons, vec!["daily"]);
    assert_eq!(by(1).reasons, vec!["tag important"]);
    assert_eq!(by(0).reasons, vec!["protected"]);
    assert!(d.iter().all(|x| x.keep));
    assert_eq!(d.first().unwrap().id.0[0], 3, "newest first");
    // An empty policy keeps everything.
    assert!(apply_policy(&snaps, &Policy::default(), now)
        .iter()
        .all(|x| x.keep));
}

#[test]
fn keep_within_boundary_is_inclusive() {
    let snaps = utc(&[
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:01Z",
        "2024-05-02T12:00:00Z",
    ]);
    let p = Policy {
        within: within("1d"),
        ..Default::default()
    };
    assert_eq!(kept(&snaps, &p), vec![0, 1, 2]);
    let p = Policy {
        within: within("23h"),
        ..Default::default()
    };
    assert_eq!(kept(&snaps, &p), vec![2]);
}

#[test]
fn keep_within_is_measured_from_the_newest_snapshot_not_now() {
    // Backups stopped two years ago: keep-within 30d must not empty the group.
    let snaps = utc(&[
        "2020-01-01T00:00:00Z",
        "2020-01-20T00:00:00Z",
        "2020-03-01T00:00:00Z",
    ]);
    let p = Policy {
        within: within("30d"),
        ..Default::default()
    };
    assert_eq!(kept(&snaps, &p), vec![2]);
}

#[test]
fn durations_parse() {
    let w: Within = "2w3d12h".parse().unwrap();
    assert_eq!((w.years, w.months, w.days, w.hours), (0, 0, 17, 12));
    let w: Within = "1y2m".parse().unwrap();
    assert_eq!((w.years, w.months, w.days, w.hours), (1, 2, 0, 0));
    for bad in ["", "12", "5x", "d", "1.5d"] {
        assert!(bad.parse::<Within>().is_err(), "{bad:?} should not parse");
    }
}
