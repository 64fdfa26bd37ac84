//! Which index objects exist, which of them are current (superseded by none) and which packs the
//! current ones list (gc.md §4). Only pack ids are kept, not blob entries: memory grows with
//! the number of packs, which is thousands of times smaller than the number of blobs.

use std::collections::{HashMap, HashSet};

use crate::backend::Kind;
use crate::error::Result;
use crate::id::Id;
use crate::repo::Repository;

pub(crate) struct IndexCatalog {
    /// Every index object present, with the objects it supersedes and the packs it lists.
    pub objects: HashMap<String, (Vec<Id>, Vec<Id>)>,
    /// Names superseded by some present object.
    pub superseded: HashSet<String>,
    /// Packs listed by current objects.
    pub current_packs: HashSet<Id>,
}

impl IndexCatalog {
    pub fn load(repo: &Repository) -> Result<IndexCatalog> {
        let mut objects = HashMap::new();
        let mut superseded = HashSet::new();
        for (name, _) in repo.backend().list(Kind::Index)? {
            let obj = match repo.load_index_object(&name) {
                Err(crate::Error::Backend(e)) if e.is_not_found() => continue,
                other => other?,
            };
            superseded.extend(obj.supersedes.iter().map(Id::to_hex));
            let packs: Vec<Id> = obj.packs.iter().map(|p| p.pack).collect();
            objects.insert(name, (obj.supersedes, packs));
        }
        let mut current_packs = HashSet::new();
        for (name, (_, packs)) in &objects {
            if !superseded.contains(name) {
                current_packs.extend(packs.iter().copied());
            }
        }
        Ok(IndexCatalog {
            objects,
            superseded,
            current_packs,
        })
    }

    /// Current index objects (superseded by none), sorted by name.
    pub fn current(&self) -> Vec<&String> {
        let mut v: Vec<&String> = self
            .objects
            .keys()
            .filter(|n| !self.superseded.contains(*n))
            .collect();
        v.sort();
        v
    }

    /// Superseded index objects still present, sorted by name.
    pub fn superseded_present(&self) -> Vec<&String> {
        let mut v: Vec<&String> = self
            .objects
            .keys()
            .filter(|n| self.superseded.contains(*n))
            .collect();
        v.sort();
        v
    }

    pub fn is_current(&self, name: &str) -> bool {
        self.objects.contains_key(name) && !self.superseded.contains(name)
    }

    /// What `name` supersedes, for carrying the chain forward when `name` is itself replaced.
    pub fn supersedes_of(&self, name: &str) -> &[Id] {
        self.objects.get(name).map_or(&[], |(s, _)| s.as_slice())
    }
}
