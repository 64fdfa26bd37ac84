//! Command-line arguments (clap). Parsing only: the commands live in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "backup-to-s3",
    version,
    about = "Encrypted, deduplicating snapshots of your files on S3 or a local disk"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Repository: a local path or s3://BUCKET/PREFIX (default: a repository in your data folder)
    #[arg(short = 'r', long, env = "BACKUP_TO_S3_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Read the password from this file (first line)
    #[arg(long, env = "BACKUP_TO_S3_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its first output line as the password
    #[arg(long, env = "BACKUP_TO_S3_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// Folder for the local index cache (default: your cache folder)
    #[arg(long, env = "BACKUP_TO_S3_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Machine-readable output (JSON)
    #[arg(long, global = true)]
    pub json: bool,
    /// Only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail (repeat for debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Parallel transfers [default: 4 for S3; local repository: one per core, 2 pack writers]
    #[arg(long, global = true)]
    pub connections: Option<usize>,
    /// S3-compatible endpoint URL (also AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)
    #[arg(long, env = "BACKUP_TO_S3_S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,
    /// Use path-style S3 addressing (implied by --s3-endpoint)
    #[arg(long, global = true)]
    pub s3_path_style: bool,
    /// S3 region (default: from the AWS configuration, else us-east-1)
    #[arg(long, global = true)]
    pub s3_region: Option<String>,
    /// Storage class for data packs, e.g. STANDARD_IA, GLACIER_IR (metadata stays STANDARD)
    #[arg(long, global = true)]
    pub pack_storage_class: Option<String>,
    /// Compute S3 checksums only when required (for providers that reject flexible checksums)
    #[arg(long, global = true)]
    pub s3_checksum_when_required: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository
    Init(InitArgs),
    /// Back up files and folders (or standard input) into a new snapshot
    Backup(BackupArgs),
    /// List snapshots
    Snapshots(FilterArgs),
    /// List the files of a snapshot
    Ls(LsArgs),
    /// Write one file of a snapshot to standard output (e.g. a database dump into psql)
    Dump(DumpArgs),
    /// Show what changed between two snapshots
    Diff { a: String, b: String },
    /// Find files by name or path pattern across snapshots
    Find {
        pattern: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Restore a snapshot (all of it or selected files)
    Restore(RestoreArgs),
    /// Verify the repository's structure and, with --read-data, all data
    Check(CheckArgs),
    /// Manage the passwords (key slots) of a repository
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Print a repository object, decrypted, for debugging
    Cat {
        /// config, snapshot, tree, index, key or pack
        kind: String,
        /// The object id (not needed for config)
        id: Option<String>,
    },
    /// Browse the snapshots as a read-only filesystem (FUSE) until unmounted
    #[cfg(all(feature = "fuse", target_os = "linux"))]
    Mount(super::mount::MountArgs),
    /// Remove snapshots by retention policy or id (and with --prune their data)
    Forget(super::prune_args::ForgetArgs),
    /// Delete data no snapshot needs, without blocking running backups (two phases)
    Prune(super::prune_args::PruneArgs),
    /// forget --prune in one command (use --dry-run to preview)
    Cleanup(super::prune_args::ForgetArgs),
    /// Change the tags of snapshots
    Tag(super::prune_args::TagArgs),
    /// Protect snapshots from forget (adds the tag `protected`)
    Protect { snapshots: Vec<String> },
    /// Remove the protection of snapshots
    Unprotect { snapshots: Vec<String> },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// zstd level for new data (0 = store uncompressed)
    #[arg(long, default_value_t = 3)]
    pub compression: i32,
    /// Memory for the password KDF (argon2id), MiB
    #[arg(long, default_value_t = 16)]
    pub kdf_memory_mib: u32,
    /// Iterations (passes) of the password KDF
    #[arg(long, default_value_t = 6)]
    pub kdf_iterations: u32,
    /// Pack size target, MiB
    #[arg(long, default_value_t = 16)]
    pub pack_size_mib: u32,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and folders to back up (with --stdin-from-command: the command and its arguments)
    pub paths: Vec<PathBuf>,
    /// Exclude paths matching a pattern (name pattern, or path pattern when it contains /)
    #[arg(short = 'e', long)]
    pub exclude: Vec<String>,
    /// Read exclude patterns from a file
    #[arg(long)]
    pub exclude_file: Vec<PathBuf>,
    /// Skip folders that contain a file with this name
    #[arg(long)]
    pub exclude_if_present: Vec<String>,
    /// Do not cross filesystem boundaries
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Tag the snapshot (repeatable)
    #[arg(long)]
    pub tag: Vec<String>,
    /// Hostname to record (default: this host)
    #[arg(long)]
    pub host: Option<String>,
    /// Do everything but store anything
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Re-read every file, ignoring the parent snapshot's metadata
    #[arg(short, long)]
    pub force: bool,
    /// Parent snapshot (default: the latest of this host and these paths)
    #[arg(long)]
    pub parent: Option<String>,
    /// Back up standard input
    #[arg(long)]
    pub stdin: bool,
    /// Back up the standard output of the command given after `--`; no snapshot is saved
    /// unless it exits successfully
    #[arg(long, conflicts_with = "stdin")]
    pub stdin_from_command: bool,
    /// File name for --stdin and --stdin-from-command
    #[arg(long, default_value = "stdin")]
    pub stdin_filename: String,
}

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots of this path
    #[arg(long = "path")]
    pub paths: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id, unique prefix or `latest`
    pub snapshot: String,
    /// Folder inside the snapshot
    pub path: Option<String>,
    /// Show mode, owner, size and time
    #[arg(short, long)]
    pub long: bool,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Snapshot id, unique prefix or `latest`
    pub snapshot: String,
    /// The file inside the snapshot (as `ls` shows it, e.g. /mydb.sql)
    pub path: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id, unique prefix or `latest` (may be omitted with --at)
    pub snapshot: Option<String>,
    /// Folder to restore into (snapshot paths are recreated below it)
    #[arg(short, long)]
    pub target: PathBuf,
    /// Restore the last snapshot taken at or before this time ("2026-01-15 14:30", RFC 3339)
    #[arg(long)]
    pub at: Option<String>,
    /// Restore only paths matching a pattern (repeatable)
    #[arg(short, long)]
    pub include: Vec<String>,
    /// Skip paths matching a pattern (repeatable)
    #[arg(short, long)]
    pub exclude: Vec<String>,
    /// Show what would be restored
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Write every file through the page cache, never with O_DIRECT (for file systems where
    /// direct writes are slow, such as some network file systems)
    #[arg(long)]
    pub buffered: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Read and verify all data
    #[arg(long)]
    pub read_data: bool,
    /// Read and verify a part of the data, e.g. 10%
    #[arg(long)]
    pub read_data_subset: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// List key slots
    List,
    /// Add a password (from --new-password-file, BACKUP_TO_S3_NEW_PASSWORD or a prompt)
    Add {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key slot by id or prefix
    Remove { id: String },
    /// Change the current password
    Passwd {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
}
