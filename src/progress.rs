//! Progress reporting without a UI dependency: operations call a `Progress`; the CLI draws bars.

/// Receives progress from long operations. All methods have no-op defaults.
pub trait Progress: Send + Sync {
    /// Whether totals are worth computing ahead (a visible bar wants an ETA).
    fn wants_totals(&self) -> bool {
        false
    }
    /// The amount of work, when known (files and bytes).
    fn set_total(&self, _files: u64, _bytes: u64) {}
    /// Bytes processed (read, restored or verified).
    fn add_bytes(&self, _n: u64) {}
    /// One item (file, pack) finished.
    fn add_item(&self, _n: u64) {}
    /// The item being worked on, for display.
    fn set_current(&self, _what: &str) {}
    /// A problem that does not stop the operation.
    fn warn(&self, _message: &str) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}
