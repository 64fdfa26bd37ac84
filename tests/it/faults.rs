//! Backup, restore and check under injected backend faults (`backend::faulty`). Whatever fails,
//! the storage afterwards checks clean without the decorator (unindexed leftover packs are only
//! warnings), a failed backup left no snapshot, every committed snapshot restores byte-exact and
//! the next backup succeeds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backup_to_s3::backend::faulty::{Fault, FaultPlan, Faulty, Op, Trigger};
use backup_to_s3::backend::local::LocalBackend;
use backup_to_s3::backend::{Backend, Kind, Retry, RetryPolicy};
use backup_to_s3::ops::backup::{backup, BackupOptions, Source};
use backup_to_s3::ops::check::{check, CheckOptions};
use backup_to_s3::ops::restore::{restore, RestoreOptions};
use backup_to_s3::progress::NoProgress;
use backup_to_s3::repo::DynBackend;
use backup_to_s3::Id;

use crate::common::*;
use crate::relutil::*;

/// A repository, a changing source tree and the snapshots committed so far.
struct Lab {
    env: Env,
    src: PathBuf,
    round: u64,
    committed: Vec<(Id, PathBuf)>,
}

impl Lab {
    fn new() -> Lab {
        let env = Env::new();
        init_local(&env);
        let src = env.path("src");
        Lab {
            env,
            src,
            round: 0,
            committed: Vec::new(),
        }
    }

    fn faulty(&self, plan: FaultPlan) -> Arc<Faulty<Arc<LocalBackend>>> {
        Arc::new(Faulty::with_plan(local(&self.env), plan))
    }

    /// Change the tree, then back it up through `backend`; a committed snapshot is recorded
    /// with a copy of its tree, a failed backup must have left no snapshot object.
    fn backup_through(&mut self, backend: DynBackend) -> backup_to_s3::Result<Id> {
        change_tree(&self.src, self.round);
        self.round += 1;
        let before = snapshot_objects(&self.env);
        let result = open_with(&self.env, backend).and_then(|repo| {
            let opts = BackupOptions {
                connections: 2,
                ..Default::default()
            };
            let paths = [self.src.clone()];
            backup(&repo, Source::Paths(&paths), &opts, &NoProgress)
        });
        match result {
            Ok(summary) => {
                let id: Id = summary.snapshot_id.unwrap().parse().unwrap();
                let expected = expected_dir(&self.env, self.committed.len());
                copy_tree(&self.src, &expected);
                self.committed.push((id, expected));
                assert_eq!(snapshot_objects(&self.env), before + 1);
                Ok(id)
            }
            Err(e) => {
                assert_eq!(
                    snapshot_objects(&self.env),
                    before,
                    "a failed backup ({e}) left a snapshot"
                );
                Err(e)
            }
        }
    }

    /// Check clean and restore every committed snapshot exactly, without the decorator.
    fn verify_all(&self) {
        check_clean(&self.env);
        for (id, expected) in &self.committed {
            assert_restores(&self.env, id, &self.src, expected);
        }
    }

    /// The next backup without faults succeeds.
    fn clean_backup(&mut self) {
        let b = local(&self.env);
        self.backup_through(b).unwrap();
    }
}

#[test]
fn crash_at_any_point_of_a_backup_leaves_a_consistent_repository() {
    let mut lab = Lab::new();
    // A clean run first: its operation count spreads the crash points over a whole backup.
    let counter = lab.faulty(FaultPlan::new());
    lab.backup_through(counter.clone()).unwrap();
    let total = counter.ops();
    assert!(
        total > 8,
        "a backup takes more than a few operations ({total})"
    );
    let mut failed = 0;
    for i in 0..8u64 {
        let crash = i * total / 7;
        let b = lab.faulty(FaultPlan::new().crash_after(crash));
        if lab.backup_through(b).is_err() {
            failed += 1;
        }
        check_clean(&lab.env);
    }
    // A crash after the snapshot is written (at the session's removal) is a successful backup.
    assert!(
        failed >= 5,
        "most crash points must hit the backup ({failed})"
    );
    lab.clean_backup();
    lab.verify_all();
}

#[test]
fn failed_and_torn_writes_leave_no_snapshot() {
    let mut lab = Lab::new();
    lab.clean_backup();
    let plans = [
        // The second pack upload fails for good.
        FaultPlan::new().fail_nth(Op::Put, Some(Kind::Pack), 2, false),
        // A pack is torn mid-upload: half of it lands under its name.
        FaultPlan::new().short_write_nth(Some(Kind::Pack), 1),
        // The index object cannot be written: its packs stay pending for the next open.
        FaultPlan::new().fail_nth(Op::Put, Some(Kind::Index), 1, false),
        // Everything is stored except the snapshot itself.
        FaultPlan::new().fail_nth(Op::Put, Some(Kind::Snapshot), 1, false),
        // Transient errors without a retry layer are still errors.
        FaultPlan::new().fail_every(Op::Put, None, true),
        // Listing the index (to sync it when the repository is opened) fails.
        FaultPlan::new().fail_nth(Op::List, Some(Kind::Index), 1, false),
    ];
    for plan in plans {
        let b = lab.faulty(plan.clone());
        assert!(
            lab.backup_through(b).is_err(),
            "the backup must fail under {plan:?}"
        );
        check_clean(&lab.env);
    }
    lab.clean_backup();
    let report = check_clean(&lab.env);
    assert!(
        report.warnings.iter().any(|w| w.contains("not indexed")),
        "the torn pack is reported as a leftover: {:?}",
        report.warnings
    );
    lab.verify_all();
}

#[test]
fn transient_faults_and_latency_are_ridden_out_by_retry() {
    let mut lab = Lab::new();
    let plan = FaultPlan::new()
        .rule(
            None,
            None,
            Trigger::EveryNthOnce(3),
            Fault::Error { transient: true },
        )
        .latency(Duration::from_millis(1));
    let faulty = lab.faulty(plan);
    let policy = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
    };
    let retry = Arc::new(Retry::with_policy(faulty.clone(), policy));
    lab.backup_through(retry.clone()).unwrap();
    lab.backup_through(retry.clone()).unwrap();
    assert!(faulty.injected() > 0 && retry.retries() > 0);
    // Restore and check through the same flaky stack succeed too.
    let repo = open_with(&lab.env, retry.clone()).unwrap();
    let opts = CheckOptions {
        read_data: true,
        read_data_subset: None,
        ..Default::default()
    };
    let report = check(&repo, &opts, &NoProgress).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let (id, expected) = lab.committed.last().unwrap().clone();
    let target = lab.env.path("flaky-restore");
    restore(&repo, &id, &target, &RestoreOptions::default(), &NoProgress).unwrap();
    assert_same_content(&expected, &restored(&target, &lab.src));
    lab.verify_all();
}

#[test]
fn restore_and_check_under_faults_fail_cleanly_and_change_nothing() {
    let mut lab = Lab::new();
    lab.clean_backup();
    lab.clean_backup();
    let (id, expected) = lab.committed.last().unwrap().clone();
    let plans = [
        FaultPlan::new().fail_every(Op::Get, Some(Kind::Pack), false),
        FaultPlan::new().fail_nth(Op::Get, Some(Kind::Pack), 3, false),
        FaultPlan::new().crash_after(12),
        FaultPlan::new().crash_after(20),
    ];
    for (i, plan) in plans.iter().enumerate() {
        let b = lab.faulty(plan.clone());
        // Restore either fails with an error or restores exactly.
        let target = lab.env.path(&format!("faulty-restore-{i}"));
        let restored_ok = open_with(&lab.env, b.clone())
            .and_then(|repo| restore(&repo, &id, &target, &RestoreOptions::default(), &NoProgress));
        if restored_ok.is_ok() {
            assert_same_content(&expected, &restored(&target, &lab.src));
        }
        // Check under faults reports problems (or fails), but never alters the repository.
        let b = lab.faulty(plan.clone());
        if let Ok(repo) = open_with(&lab.env, b.clone()) {
            let opts = CheckOptions {
                read_data: true,
                read_data_subset: None,
                ..Default::default()
            };
            if let Ok(report) = check(&repo, &opts, &NoProgress) {
                if b.injected() > 0 {
                    assert!(
                        !report.errors.is_empty(),
                        "an injected fault went unreported"
                    );
                }
            }
        }
        check_clean(&lab.env);
    }
    assert_eq!(snapshot_objects(&lab.env), 2);
    lab.verify_all();
}

#[test]
fn a_torn_index_object_does_not_lock_the_repository() {
    let mut lab = Lab::new();
    lab.clean_backup();
    let b = lab.faulty(FaultPlan::new().short_write_nth(Some(Kind::Index), 1));
    assert!(lab.backup_through(b).is_err());
    let torn: Vec<String> = {
        let repo = open_with(&lab.env, local(&lab.env)).expect("the repository still opens");
        let index = local(&lab.env).list(Kind::Index).unwrap();
        index
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| repo.load_index_object(n).is_err())
            .collect()
    };
    assert_eq!(torn.len(), 1, "one torn index object");
    // Check names it; backups go on; every snapshot restores.
    let repo = open_with(&lab.env, local(&lab.env)).unwrap();
    let opts = CheckOptions {
        read_data: true,
        read_data_subset: None,
        ..Default::default()
    };
    let report = check(&repo, &opts, &NoProgress).unwrap();
    drop(repo);
    assert!(
        report.errors.iter().any(|e| e.contains(&torn[0])),
        "{:?}",
        report.errors
    );
    lab.clean_backup();
    for (id, expected) in &lab.committed {
        assert_restores(&lab.env, id, &lab.src, expected);
    }
    // Removing the damaged object (what an operator does after check) makes check clean.
    local(&lab.env).delete(Kind::Index, &torn[0]).unwrap();
    lab.verify_all();
}
