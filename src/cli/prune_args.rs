//! Arguments of forget, prune, cleanup, tag, protect and unprotect (clap). Parsing only.

use clap::Args;

use super::args::FilterArgs;

/// restic-style retention rules. Counts accept -1 for "unlimited".
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// Keep the last N snapshots
    #[arg(long, allow_negative_numbers = true)]
    pub keep_last: Option<i64>,
    /// Keep the last snapshot of each of the last N hours
    #[arg(long, allow_negative_numbers = true)]
    pub keep_hourly: Option<i64>,
    /// Keep the last snapshot of each of the last N days
    #[arg(long, allow_negative_numbers = true)]
    pub keep_daily: Option<i64>,
    /// Keep the last snapshot of each of the last N ISO weeks
    #[arg(long, allow_negative_numbers = true)]
    pub keep_weekly: Option<i64>,
    /// Keep the last snapshot of each of the last N months
    #[arg(long, allow_negative_numbers = true)]
    pub keep_monthly: Option<i64>,
    /// Keep the last snapshot of each of the last N years
    #[arg(long, allow_negative_numbers = true)]
    pub keep_yearly: Option<i64>,
    /// Keep every snapshot within this duration of the newest (e.g. 30d, 1y2m, 2w3d12h)
    #[arg(long)]
    pub keep_within: Option<String>,
    /// Keep hourly snapshots within this duration of the newest
    #[arg(long)]
    pub keep_within_hourly: Option<String>,
    /// Keep daily snapshots within this duration of the newest
    #[arg(long)]
    pub keep_within_daily: Option<String>,
    /// Keep weekly snapshots within this duration of the newest
    #[arg(long)]
    pub keep_within_weekly: Option<String>,
    /// Keep monthly snapshots within this duration of the newest
    #[arg(long)]
    pub keep_within_monthly: Option<String>,
    /// Keep yearly snapshots within this duration of the newest
    #[arg(long)]
    pub keep_within_yearly: Option<String>,
    /// Keep snapshots with this tag (repeatable)
    #[arg(long)]
    pub keep_tag: Vec<String>,
    /// Group snapshots by these fields: host, paths, tags (comma-separated, or "" for one group)
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
}

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Show what would be forgotten and freed; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Leave at most this share of the repository unused (e.g. 5%): the most wasteful packs
    /// are repacked until it holds
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
    /// Repack at most this much data per run (e.g. 500M, 2G; default: unlimited)
    #[arg(long)]
    pub max_repack_size: Option<String>,
    /// Delete condemned packs only once a plan is this old (e.g. 1h, 30m, 0)
    #[arg(long, default_value = "1h")]
    pub grace: String,
    /// Treat a backup session as dead when its heartbeat is older than this; temporary files
    /// of a local repository older than this are removed
    #[arg(long, default_value = "2h")]
    pub stale_after: String,
    /// Same as --grace 0: finish in one run when no backup is running
    #[arg(long)]
    pub now: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ForgetArgs {
    /// Snapshots to forget (ids or unique prefixes) instead of a policy
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Prune afterwards
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_args: PruneArgs,
}

#[derive(Args, Debug, Clone)]
pub struct TagArgs {
    /// Snapshots to change
    #[arg(required = true)]
    pub snapshots: Vec<String>,
    /// Add a tag (repeatable)
    #[arg(long)]
    pub add: Vec<String>,
    /// Remove a tag (repeatable)
    #[arg(long)]
    pub remove: Vec<String>,
    /// Replace all tags with these (repeatable)
    #[arg(long)]
    pub set: Vec<String>,
}
