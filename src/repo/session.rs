//! Backup sessions (format-spec §9.4, `gc.md` §2): a running backup announces itself with a
//! `sessions/<id>-<heartbeat>` object before it syncs the index, refreshes it while it runs, and
//! removes it once its snapshot is written. Prune waits for the sessions alive at its phase one.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{DynBackend, Repository};
use crate::backend::{Backend, Counting, Kind, Temperature};
use crate::crypto::SealKey;
use crate::error::{Error, Result};
use crate::format::gc::{session_name, Session};

/// How often a running backup refreshes its session object.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// A backup whose own heartbeat is older than this refuses to write its snapshot: prune may
/// have counted it as dead (the default `--stale-after` of prune is 2 h; this is less).
pub const SELF_STALE_AFTER: Duration = Duration::from_secs(90 * 60);

pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

struct Beat {
    backend: Arc<Counting<DynBackend>>,
    key: SealKey,
    session: Session,
    /// Name of the current object and the wall-clock second it was written.
    current: Mutex<(String, i64)>,
}

impl Beat {
    fn write(&self, now: i64) -> Result<()> {
        let mut s = self.session.clone();
        s.heartbeat_s = now;
        let name = session_name(&s.id, now);
        let old = self.current.lock().map(|c| c.0.clone()).unwrap_or_default();
        if name != old {
            match self
                .backend
                .put(Kind::Session, &name, &s.encode(&self.key), Temperature::Hot)
            {
                Err(e) if e.is_already_exists() => {}
                other => other?,
            }
            if !old.is_empty() {
                self.backend.delete(Kind::Session, &old)?;
            }
        }
        if let Ok(mut c) = self.current.lock() {
            *c = (name, now);
        }
        Ok(())
    }
}

/// A live session; ends (object deleted) with `end` or, best effort, on drop.
pub struct SessionGuard {
    beat: Arc<Beat>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Repository {
    /// Announce a backup session (writes its first heartbeat before returning).
    pub fn start_session(&self) -> Result<SessionGuard> {
        let (backend, _, _) = self.shared_parts();
        let (host, _) = super::whoami();
        let now = unix_now();
        let mut rnd = [0u8; 16];
        crate::crypto::fill_random(&mut rnd);
        let beat = Arc::new(Beat {
            backend,
            key: self.codec().keys().meta.clone(),
            session: Session {
                id: hex::encode(rnd),
                host,
                pid: std::process::id(),
                start_s: now,
                heartbeat_s: now,
            },
            current: Mutex::new((String::new(), now)),
        });
        beat.write(now)?;
        let (tx, rx) = channel::<()>();
        let b = beat.clone();
        let thread = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(HEARTBEAT) {
                if let Err(e) = b.write(unix_now()) {
                    tracing::warn!("session heartbeat failed: {e}");
                }
            }
        });
        Ok(SessionGuard {
            beat,
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl SessionGuard {
    pub fn id(&self) -> &str {
        &self.beat.session.id
    }

    /// Fail when this session's last heartbeat is so old that a prune may have given up on it
    /// (the process was suspended, or the repository unreachable): its snapshot could then
    /// reference packs already deleted. Call right before writing the snapshot.
    pub fn ensure_fresh(&self) -> Result<()> {
        let last = self.beat.current.lock().map(|c| c.1).unwrap_or(0);
        let age = unix_now().saturating_sub(last);
        if age > SELF_STALE_AFTER.as_secs() as i64 {
            return Err(Error::Invalid(format!(
                "this backup's session heartbeat is {age} s old (suspended or offline?); \
                 a concurrent prune may have removed data it references: run the backup again"
            )));
        }
        self.beat.write(unix_now())
    }

    fn stop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// End the session: stop the heartbeat and delete the session object.
    pub fn end(mut self) -> Result<()> {
        self.stop();
        let name = self
            .beat
            .current
            .lock()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        self.beat.backend.delete(Kind::Session, &name)?;
        Ok(())
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
            let name = self
                .beat
                .current
                .lock()
                .map(|c| c.0.clone())
                .unwrap_or_default();
            let _ = self.beat.backend.delete(Kind::Session, &name);
        }
    }
}
