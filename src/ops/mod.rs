//! Operations on a repository. Each takes a plain options struct; destructive ones plan first.

pub mod backup;
pub mod check;
pub mod dump;
pub mod filter;
pub mod forget;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod snapshots;
