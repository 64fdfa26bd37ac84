//! Objects written piece by piece and named only when complete (`Backend::stage`,
//! `Backend::commit`): packs are named by the hash of their bytes, so a pack streamed to storage
//! as its blobs arrive gets its name at the end.
//!
//! By default a staged object is a buffer in memory that `commit` stores with `put`, so every
//! backend and decorator (retries, fault injection) keeps the behaviour of `put`. A backend that
//! can do better stages into its own sink: `LocalBackend` writes a temporary file and commits
//! it with the same durability steps as `put`.

use super::{BResult, Kind, Temperature};

/// A backend's own staging area for one object (a temporary file for `LocalBackend`).
/// Dropping it without `commit` must leave nothing behind under any object name.
pub trait StagedSink: Send {
    /// Append bytes.
    fn write(&mut self, data: &[u8]) -> BResult<()>;
    /// Store what was written under `name`. Never overwrites: an existing object gives
    /// `AlreadyExists` and is left as it was.
    fn commit(self: Box<Self>, name: &str) -> BResult<()>;
}

pub(crate) enum StagedBody {
    Memory(Vec<u8>),
    Sink(Box<dyn StagedSink>),
}

/// An object being written; see the module documentation.
pub struct Staged {
    kind: Kind,
    temp: Temperature,
    len: u64,
    pub(crate) body: StagedBody,
}

impl Staged {
    /// Buffer in memory; `capacity` is reserved up front (a growing buffer would double).
    pub fn in_memory(kind: Kind, temp: Temperature, capacity: usize) -> Self {
        Staged {
            kind,
            temp,
            len: 0,
            body: StagedBody::Memory(Vec::with_capacity(capacity)),
        }
    }

    /// Write into a backend's own sink.
    pub fn with_sink(kind: Kind, temp: Temperature, sink: Box<dyn StagedSink>) -> Self {
        Staged {
            kind,
            temp,
            len: 0,
            body: StagedBody::Sink(sink),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn temperature(&self) -> Temperature {
        self.temp
    }
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether the bytes are held in memory until the commit (they cost RAM while queued).
    pub fn is_in_memory(&self) -> bool {
        matches!(self.body, StagedBody::Memory(_))
    }

    pub fn write(&mut self, data: &[u8]) -> BResult<()> {
        match &mut self.body {
            StagedBody::Memory(buf) => buf.extend_from_slice(data),
            StagedBody::Sink(sink) => sink.write(data)?,
        }
        self.len += data.len() as u64;
        Ok(())
    }
}
