//! An in-memory backend for tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{BResult, Backend, BackendError, Kind, Temperature};

#[derive(Default)]
pub struct MemBackend {
    objects: Mutex<BTreeMap<(Kind, String), Vec<u8>>>,
}

impl MemBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Kind, String), Vec<u8>>> {
        // A poisoned lock only means another test thread panicked; the map itself is intact.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace an object's bytes: tests use this to simulate tampering.
    pub fn tamper(&self, kind: Kind, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> bool {
        match self.lock().get_mut(&(kind, name.to_string())) {
            Some(v) => {
                f(v);
                true
            }
            None => false,
        }
    }
}

impl Backend for MemBackend {
    fn cheap_ranges(&self) -> bool {
        true
    }

    fn location(&self) -> String {
        "mem:".to_string()
    }
    fn create(&self) -> BResult<()> {
        Ok(())
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], _temp: Temperature) -> BResult<()> {
        let mut map = self.lock();
        let key = (kind, name.to_string());
        if map.contains_key(&key) {
            return Err(BackendError::AlreadyExists {
                kind,
                name: name.to_string(),
            });
        }
        map.insert(key, data.to_vec());
        Ok(())
    }
    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        self.lock()
            .get(&(kind, name.to_string()))
            .cloned()
            .ok_or_else(|| BackendError::NotFound {
                kind,
                name: name.to_string(),
            })
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
        let map = self.lock();
        let obj = map
            .get(&(kind, name.to_string()))
            .ok_or_else(|| BackendError::NotFound {
                kind,
                name: name.to_string(),
            })?;
        let start = usize::try_from(offset).ok();
        let end = start.and_then(|s| s.checked_add(usize::try_from(len).ok()?));
        match (start, end) {
            (Some(s), Some(e)) if e <= obj.len() => Ok(obj[s..e].to_vec()),
            _ => Err(BackendError::Other(format!(
                "{kind}/{name}: range {offset}+{len} beyond object size {}",
                obj.len()
            ))),
        }
    }
    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        Ok(self
            .lock()
            .get(&(kind, name.to_string()))
            .map(|v| v.len() as u64))
    }
    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        Ok(self
            .lock()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, n), v)| (n.clone(), v.len() as u64))
            .collect())
    }
    fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        self.lock().remove(&(kind, name.to_string()));
        Ok(())
    }
}
