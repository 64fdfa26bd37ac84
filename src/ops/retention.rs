//! Retention policy (format-spec §9.4 "forget"): a pure function deciding which snapshots of
//! one group to keep, with restic's semantics. Calendar buckets (hour, day, ISO week, month,
//! year) are taken in each snapshot's own local time (its stored UTC offset); the newest
//! snapshot of each bucket is kept, newest buckets first, until a rule's count runs out.

use std::str::FromStr;

use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::Id;

/// The tag that protects a snapshot from `forget`.
pub const PROTECTED_TAG: &str = "protected";

/// A calendar duration such as `30d`, `1y2m` or `2w3d12h` (weeks are 7 days).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Within {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl Within {
    pub fn is_zero(&self) -> bool {
        *self == Within::default()
    }

    /// The point `self` before `t`, in the calendar of `offset` (so "1m" before 31 March is
    /// 28/29 February, as in restic).
    fn before(&self, t: Timestamp, offset: Offset) -> Timestamp {
        let span = Span::new()
            .try_years(self.years)
            .and_then(|s| s.try_months(self.months))
            .and_then(|s| s.try_days(self.days))
            .and_then(|s| s.try_hours(self.hours));
        span.ok()
            .and_then(|s| t.to_zoned(TimeZone::fixed(offset)).checked_sub(s).ok())
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MIN)
    }
}

impl FromStr for Within {
    type Err = Error;
    fn from_str(s: &str) -> Result<Within> {
        let bad = || {
            Error::Invalid(format!(
                "invalid duration {s:?} (expected e.g. 30d, 1y2m, 2w3d12h)"
            ))
        };
        let mut w = Within::default();
        let mut num = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => w.years += n,
                'm' => w.months += n,
                'w' => w.days += n * 7,
                'd' => w.days += n,
                'h' => w.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || s.trim().is_empty() {
            return Err(bad());
        }
        Ok(w)
    }
}

/// Counts per rule; `None` = rule off, `Some(u32::MAX)` = unlimited (restic's `-1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub within: Option<Within>,
    pub within_hourly: Option<Within>,
    pub within_daily: Option<Within>,
    pub within_weekly: Option<Within>,
    pub within_monthly: Option<Within>,
    pub within_yearly: Option<Within>,
    pub tags: Vec<String>,
}

impl Policy {
    /// True when no rule is set (forget then refuses to act).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: Id,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    const ALL: [(Period, &'static str); 5] = [
        (Period::Hour, "hourly"),
        (Period::Day, "daily"),
        (Period::Week, "weekly"),
        (Period::Month, "monthly"),
        (Period::Year, "yearly"),
    ];

    /// The calendar bucket of `s` in its own local time.
    fn bucket(self, s: &Snapshot) -> i64 {
        let offset = Offset::from_seconds(s.tz_offset_s).unwrap_or(Offset::UTC);
        let dt = offset.to_datetime(s.time());
        let (y, m, d, h) = (
            i64::from(dt.year()),
            i64::from(dt.month()),
            i64::from(dt.day()),
            i64::from(dt.hour()),
        );
        match self {
            Period::Hour => ((y * 100 + m) * 100 + d) * 100 + h,
            Period::Day => (y * 100 + m) * 100 + d,
            Period::Week => {
                let w = dt.date().iso_week_date();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Period::Month => y * 100 + m,
            Period::Year => y,
        }
    }
}

/// A bucket rule being applied: how many more buckets it may keep and the last bucket kept.
struct Counter {
    period: Period,
    name: String,
    left: u32,
    last: Option<i64>,
    /// For the `within-*` rules: only snapshots at or after this time count.
    since: Option<Timestamp>,
}

impl Counter {
    fn offer(&mut self, s: &Snapshot) -> Option<String> {
        if self.left == 0 || self.since.is_some_and(|t| s.time() < t) {
            return None;
        }
        let b = self.period.bucket(s);
        if self.last == Some(b) {
            return None;
        }
        self.last = Some(b);
        self.left = self.left.saturating_sub(u32::from(self.left != u32::MAX));
        Some(self.name.clone())
    }
}

/// Decide for every snapshot of one group whether it is kept, and why. `snapshots` may come in
/// any order; decisions are returned newest first. `keep-within` durations are measured back
/// from the group's newest snapshot (restic's rule: a pause in backups never empties a group),
/// or from `now` if that is earlier (a clock that ran ahead cannot stretch the window).
/// Snapshots tagged `protected` are always kept. An empty policy keeps everything.
pub fn apply_policy(
    snapshots: &[(Id, Snapshot)],
    policy: &Policy,
    now: Timestamp,
) -> Vec<Decision> {
    let mut order: Vec<&(Id, Snapshot)> = snapshots.iter().collect();
    order.sort_by_key(|b| std::cmp::Reverse((b.1.time_ns, b.0)));
    let Some(newest) = order.first().map(|(_, s)| s) else {
        return Vec::new();
    };
    let reference = newest.time().min(now);
    let offset = Offset::from_seconds(newest.tz_offset_s).unwrap_or(Offset::UTC);
    let counts = [
        policy.hourly,
        policy.daily,
        policy.weekly,
        policy.monthly,
        policy.yearly,
    ];
    let withins = [
        policy.within_hourly,
        policy.within_daily,
        policy.within_weekly,
        policy.within_monthly,
        policy.within_yearly,
    ];
    let mut counters = Vec::new();
    for ((period, name), count) in Period::ALL.iter().zip(counts) {
        if let Some(n) = count.filter(|n| *n > 0) {
            counters.push(Counter {
                period: *period,
                name: name.to_string(),
                left: n,
                last: None,
                since: None,
            });
        }
    }
    for ((period, name), within) in Period::ALL.iter().zip(withins) {
        if let Some(w) = within {
            counters.push(Counter {
                period: *period,
                name: format!("within-{name}"),
                left: u32::MAX,
                last: None,
                since: Some(w.before(reference, offset)),
            });
        }
    }
    let within_since = policy.within.map(|w| w.before(reference, offset));
    let empty = policy.is_empty();
    let mut out = Vec::with_capacity(order.len());
    for (i, (id, s)) in order.iter().enumerate() {
        let mut reasons = Vec::new();
        if s.has_tag(PROTECTED_TAG) {
            reasons.push("protected".to_string());
        }
        if empty {
            reasons.push("no policy".to_string());
        }
        if policy
            .last
            .is_some_and(|n| n == u32::MAX || (i as u64) < u64::from(n))
        {
            reasons.push("last".to_string());
        }
        for c in counters.iter_mut() {
            reasons.extend(c.offer(s));
        }
        if within_since.is_some_and(|t| s.time() >= t) {
            reasons.push("within".to_string());
        }
        for t in &policy.tags {
            if s.has_tag(t) {
                reasons.push(format!("tag {t}"));
            }
        }
        out.push(Decision {
            id: *id,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    out
}
