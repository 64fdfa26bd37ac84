//! A fault-injection decorator for tests and drills: fails chosen operations (transiently or
//! not), tears writes (stores a truncated object, then reports an error, as a crash mid-upload
//! on a non-atomic store would), adds latency, and "crashes" (every operation after the Nth fails,
//! as if the process had died). The plan can be replaced at any time; counters restart with it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{BResult, Backend, BackendError, Kind, StaleTemp, Temperature};

/// A backend operation, as counted by a fault plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Put,
    /// `get` and `get_range`.
    Get,
    Stat,
    List,
    Delete,
}

/// When a rule fires, counting only the operations it matches (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Only the Nth matching operation.
    Nth(u64),
    /// Every matching operation.
    Every,
    /// Every Nth matching operation (N, 2N, …).
    EveryNth(u64),
    /// Like `EveryNth`, but a request that has just failed goes through when repeated, so one
    /// retry always heals it. With `EveryNth` alone, concurrent callers in lockstep can make the
    /// same request land on every Nth count again and again.
    EveryNthOnce(u64),
    /// Every matching operation after the first N.
    After(u64),
}

/// What happens when a rule fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail without touching the store.
    Error { transient: bool },
    /// For `put`: store the first half of the object under its name, then fail (not transient).
    /// For other operations: like a permanent error.
    ShortWrite,
}

/// One rule of a plan: which operations (None = any) of which kind (None = any), when, and what.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub op: Option<Op>,
    pub kind: Option<Kind>,
    pub trigger: Trigger,
    pub fault: Fault,
}

/// The faults to inject. The default plan injects nothing.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    pub rules: Vec<Rule>,
    /// Sleep before every operation.
    pub latency: Duration,
    /// Every operation after the first N (of any type) fails permanently.
    pub crash_after: Option<u64>,
}

impl FaultPlan {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn rule(
        mut self,
        op: Option<Op>,
        kind: Option<Kind>,
        trigger: Trigger,
        fault: Fault,
    ) -> Self {
        self.rules.push(Rule {
            op,
            kind,
            trigger,
            fault,
        });
        self
    }

    /// Fail the Nth operation `op` on objects of `kind` (None = any kind).
    pub fn fail_nth(self, op: Op, kind: Option<Kind>, n: u64, transient: bool) -> Self {
        self.rule(Some(op), kind, Trigger::Nth(n), Fault::Error { transient })
    }

    /// Fail every operation `op` on objects of `kind`.
    pub fn fail_every(self, op: Op, kind: Option<Kind>, transient: bool) -> Self {
        self.rule(Some(op), kind, Trigger::Every, Fault::Error { transient })
    }

    /// Tear the Nth `put` of `kind`: half the object is stored, then an error is reported.
    pub fn short_write_nth(self, kind: Option<Kind>, n: u64) -> Self {
        self.rule(Some(Op::Put), kind, Trigger::Nth(n), Fault::ShortWrite)
    }

    pub fn latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    pub fn crash_after(mut self, n: u64) -> Self {
        self.crash_after = Some(n);
        self
    }
}

struct State {
    plan: FaultPlan,
    /// Matching operations seen per rule.
    seen: Vec<u64>,
    /// Operations seen since the plan was set.
    ops: u64,
    /// Requests failed by an `EveryNthOnce` rule and not repeated since.
    failed_once: HashSet<Request>,
}

/// One request as a fault plan tells repeats apart: operation, kind, name and offset.
type Request = (Op, Kind, String, u64);

/// Wraps a backend and injects the faults of a `FaultPlan`.
pub struct Faulty<B> {
    inner: B,
    state: Mutex<State>,
    injected: AtomicU64,
}

impl<B: Backend> Faulty<B> {
    /// Wrap without faults (operations are still counted).
    pub fn new(inner: B) -> Self {
        Self::with_plan(inner, FaultPlan::default())
    }

    pub fn with_plan(inner: B, plan: FaultPlan) -> Self {
        let seen = vec![0; plan.rules.len()];
        Faulty {
            inner,
            state: Mutex::new(State {
                plan,
                seen,
                ops: 0,
                failed_once: HashSet::new(),
            }),
            injected: AtomicU64::new(0),
        }
    }

    /// Replace the plan; counters restart.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut s = self.lock();
        s.seen = vec![0; plan.rules.len()];
        s.plan = plan;
        s.ops = 0;
        s.failed_once.clear();
    }

    /// Remove every fault.
    pub fn heal(&self) {
        self.set_plan(FaultPlan::default());
    }

    /// Operations seen since the plan was set.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Relaxed)
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count the operation and decide whether it fails.
    fn decide(&self, op: Op, kind: Kind, name: &str, offset: u64) -> Option<Fault> {
        let (latency, fault) = {
            let mut s = self.lock();
            s.ops += 1;
            let ops = s.ops;
            let mut fault = match s.plan.crash_after {
                Some(n) if ops > n => Some(Fault::Error { transient: false }),
                _ => None,
            };
            let State {
                plan,
                seen,
                failed_once,
                ..
            } = &mut *s;
            let request = (op, kind, name.to_owned(), offset);
            let repeated = failed_once.remove(&request);
            for (rule, count) in plan.rules.iter().zip(seen.iter_mut()) {
                if rule.op.is_some_and(|o| o != op) || rule.kind.is_some_and(|k| k != kind) {
                    continue;
                }
                *count += 1;
                let fires = match rule.trigger {
                    Trigger::Nth(n) => *count == n,
                    Trigger::Every => true,
                    Trigger::EveryNth(n) => n > 0 && *count % n == 0,
                    Trigger::EveryNthOnce(n) => {
                        let fires = !repeated && n > 0 && *count % n == 0;
                        if fires {
                            failed_once.insert(request.clone());
                        }
                        fires
                    }
                    Trigger::After(n) => *count > n,
                };
                if fires && fault.is_none() {
                    fault = Some(rule.fault);
                }
            }
            (plan.latency, fault)
        };
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        if fault.is_some() {
            self.injected.fetch_add(1, Relaxed);
        }
        fault
    }

    fn check(&self, op: Op, kind: Kind, name: &str) -> BResult<()> {
        self.check_at(op, kind, name, 0)
    }

    fn check_at(&self, op: Op, kind: Kind, name: &str, offset: u64) -> BResult<()> {
        match self.decide(op, kind, name, offset) {
            None => Ok(()),
            Some(f) => Err(injected(kind, name, f)),
        }
    }
}

fn injected(kind: Kind, name: &str, fault: Fault) -> BackendError {
    let (message, transient) = match fault {
        Fault::Error { transient } => ("injected fault", transient),
        Fault::ShortWrite => ("injected fault: write torn", false),
    };
    BackendError::Remote {
        kind,
        name: name.to_string(),
        message: message.to_string(),
        transient,
    }
}

// `stage`/`commit` keep the trait's buffered default on purpose: a staged object is stored with
// `put` above, so faults (torn writes included) hit streamed packs as they hit any other write.
impl<B: Backend> Backend for Faulty<B> {
    fn cheap_ranges(&self) -> bool {
        self.inner.cheap_ranges()
    }
    fn remove_stale_temp(&self, older_than: Duration, dry_run: bool) -> BResult<StaleTemp> {
        self.inner.remove_stale_temp(older_than, dry_run)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> BResult<()> {
        self.check(Op::Create, Kind::Config, "")?;
        self.inner.create()
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()> {
        match self.decide(Op::Put, kind, name, 0) {
            None => self.inner.put(kind, name, data, temp),
            Some(Fault::ShortWrite) => {
                // The torn object is stored under its real name, as a crash mid-write leaves it.
                let _ = self.inner.put(kind, name, &data[..data.len() / 2], temp);
                Err(injected(kind, name, Fault::ShortWrite))
            }
            Some(f) => Err(injected(kind, name, f)),
        }
    }
    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        self.check(Op::Get, kind, name)?;
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
        self.check_at(Op::Get, kind, name, offset)?;
        self.inner.get_range(kind, name, offset, len)
    }
    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        self.check(Op::Stat, kind, name)?;
        self.inner.stat(kind, name)
    }
    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        self.check(Op::List, kind, "")?;
        self.inner.list(kind)
    }
    fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        self.check(Op::Delete, kind, name)?;
        self.inner.delete(kind, name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;

    #[test]
    fn nth_every_and_crash_rules_fire_as_planned() {
        let plan = FaultPlan::new()
            .fail_nth(Op::Put, Some(Kind::Pack), 2, true)
            .fail_every(Op::Delete, None, false);
        let b = Faulty::with_plan(MemBackend::new(), plan);
        let t = Temperature::Hot;
        assert!(b.put(Kind::Pack, "a1", b"x", t).is_ok());
        let e = b.put(Kind::Pack, "a2", b"x", t).unwrap_err();
        assert!(e.is_transient());
        assert!(b.put(Kind::Pack, "a3", b"x", t).is_ok());
        assert!(b.put(Kind::Index, "a4", b"x", t).is_ok());
        assert!(!b.delete(Kind::Pack, "a1").unwrap_err().is_transient());
        assert_eq!(b.injected(), 2);
        b.set_plan(FaultPlan::new().crash_after(1));
        assert!(b.get(Kind::Pack, "a1").is_ok());
        assert!(b.get(Kind::Pack, "a1").is_err());
        assert!(b.list(Kind::Pack).is_err());
        b.heal();
        assert_eq!(b.list(Kind::Pack).unwrap().len(), 2);
    }

    #[test]
    fn every_nth_once_lets_the_repeat_of_a_failed_request_through() {
        let plan = FaultPlan::new().rule(
            Some(Op::Get),
            None,
            Trigger::EveryNthOnce(1),
            Fault::Error { transient: true },
        );
        let b = Faulty::with_plan(MemBackend::new(), plan);
        b.inner()
            .put(Kind::Pack, "a1", b"xy", Temperature::Hot)
            .unwrap();
        // Every count fires, yet each request fails only until it is repeated.
        assert!(b.get(Kind::Pack, "a1").is_err());
        assert!(b.get(Kind::Pack, "a1").is_ok());
        assert!(b.get(Kind::Pack, "a1").is_err());
        // Another offset is another request; each heals on its own repeat.
        assert!(b.get_range(Kind::Pack, "a1", 1, 1).is_err());
        assert_eq!(b.get_range(Kind::Pack, "a1", 1, 1).unwrap(), b"y");
        assert_eq!(b.get(Kind::Pack, "a1").unwrap(), b"xy");
        assert_eq!(b.injected(), 3);
    }

    #[test]
    fn staged_objects_are_put_so_faults_apply() {
        let b = Faulty::with_plan(
            MemBackend::new(),
            FaultPlan::new().short_write_nth(Some(Kind::Pack), 1),
        );
        let mut s = b.stage(Kind::Pack, Temperature::Cold, 0).unwrap();
        assert!(s.is_in_memory());
        s.write(b"0123456789").unwrap();
        assert!(b.commit(s, "a1").is_err());
        assert_eq!(b.injected(), 1);
        b.heal();
        assert_eq!(b.get(Kind::Pack, "a1").unwrap(), b"01234");
    }

    #[test]
    fn short_write_stores_a_torn_object() {
        let b = Faulty::with_plan(MemBackend::new(), FaultPlan::new().short_write_nth(None, 1));
        assert!(b
            .put(Kind::Pack, "a1", b"0123456789", Temperature::Cold)
            .is_err());
        b.heal();
        assert_eq!(b.get(Kind::Pack, "a1").unwrap(), b"01234");
    }
}
