//! Database dumps against a real PostgreSQL server on 127.0.0.1: `pg_dump | backup --stdin`
//! and `backup --stdin-from-command -- pg_dump`; a second dump after a change deduplicates
//! against the first, each snapshot restored (or `dump`ed into `psql`) holds exactly the rows
//! it was taken of, and a failing dump saves no snapshot.
//! `tests/run-all.sh` installs the server when it is missing; this test never skips.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::common::*;

/// A throw-away PostgreSQL cluster, stopped (immediately) when dropped.
struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// As root the server must run as another user (PostgreSQL refuses root).
    user: Option<&'static str>,
    _dir: tempfile::TempDir,
}

/// The newest installed server's programs (`/usr/lib/postgresql/N/bin`), or `PG_BIN`.
fn server_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server in /usr/lib/postgresql: run tests/run-all.sh, which installs it"
        )
    })
}

impl PgServer {
    fn start() -> PgServer {
        let bin = server_bin();
        // SAFETY: geteuid has no preconditions.
        let user = (unsafe { libc::geteuid() } == 0).then_some("nobody");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        if let Some(user) = user {
            // The server's user must reach its data folder and own it.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
            let ok = Command::new("chown")
                .args([&format!("{user}:"), data.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success(), "chown {user} {}", data.display());
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = PgServer {
            bin,
            data,
            port,
            user,
            _dir: dir,
        };
        let data = server.data.to_str().unwrap();
        server.as_server_user(
            "initdb",
            &["-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c shared_buffers=16MB"
        );
        let log = format!("{data}/server.log");
        server.as_server_user(
            "pg_ctl",
            &["-D", data, "-l", &log, "-o", &options, "-w", "start"],
        );
        server
    }

    /// One of the server's programs, to run as the server's user.
    fn server_cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.current_dir("/");
        cmd
    }

    /// Run one of the server's programs as the server's user; panics with its output on failure.
    fn as_server_user(&self, program: &str, args: &[&str]) {
        let out = self.server_cmd(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A client program (`psql`, `pg_dump`) connected to `db` over TCP on loopback, as argv.
    fn client_argv(&self, program: &str, db: &str) -> Vec<String> {
        let program = self.bin.join(program).to_str().unwrap().to_string();
        let port = self.port.to_string();
        [
            &program,
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            db,
        ]
        .map(String::from)
        .to_vec()
    }

    fn client(&self, program: &str, db: &str) -> Command {
        let argv = self.client_argv(program, db);
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }

    /// Run SQL (stopping at the first error); returns what it printed, unaligned.
    fn sql(&self, db: &str, sql: &str) -> String {
        let out = self
            .client("psql", db)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Create database `db` and load into it the plain-text dump that `dump` writes (psql reads
    /// it through a pipe, stopping at the first error).
    fn load(&self, db: &str, dump: Command) {
        self.sql("postgres", &format!("CREATE DATABASE {db}"));
        let mut psql = self.client("psql", db);
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
        let out = pipe(dump, psql);
        assert!(
            out.status.success(),
            "loading into {db}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A fingerprint of every row of the test table, in key order.
    fn fingerprint(&self, db: &str) -> String {
        self.sql(
            db,
            "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM orders t",
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap_or_default();
        let _ = self
            .server_cmd("pg_ctl")
            .args(["-D", data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// `from | to` through a real pipe; panics if `from` fails; returns `to`'s output.
fn pipe(mut from: Command, mut to: Command) -> Output {
    let mut producer = from.stdout(Stdio::piped()).spawn().unwrap();
    let out = to.stdin(producer.stdout.take().unwrap()).output().unwrap();
    assert!(producer.wait().unwrap().success(), "{from:?} failed");
    out
}

/// `pg_dump DB | backup-to-s3 backup --stdin`; returns the backup summary.
fn dump_and_back_up(env: &Env, pg: &PgServer, db: &str, name: &str) -> serde_json::Value {
    let mut backup = env.cmd();
    backup.args(["backup", "--json", "--stdin", "--stdin-filename", name]);
    let out = pipe(pg.client("pg_dump", db), backup);
    assert!(
        out.status.success(),
        "backup --stdin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    last_json(&String::from_utf8_lossy(&out.stdout))
}

/// `backup --stdin-from-command -- pg_dump DB`: the backup runs the dump itself.
fn back_up_dump_command(env: &Env, pg: &PgServer, db: &str, name: &str) -> Output {
    env.cmd()
        .args([
            "backup",
            "--json",
            "--stdin-filename",
            name,
            "--stdin-from-command",
            "--",
        ])
        .args(pg.client_argv("pg_dump", db))
        .output()
        .unwrap()
}

#[test]
fn pg_dump_through_a_pipe_restores_into_a_new_database() {
    let pg = PgServer::start();
    pg.sql("postgres", "CREATE DATABASE shop");
    // ~38 MB of dump: text, numbers, timestamps and binary data.
    pg.sql(
        "shop",
        "CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(12,2),
                              placed timestamptz, note text, blob bytea);
         INSERT INTO orders
         SELECT i, 'customer-' || (i % 5000), (i * 7919 % 100000) / 100.0,
                timestamptz '2026-01-01' + i * interval '1 minute',
                repeat(md5(i::text), 1 + i % 3), decode(md5((i * 31)::text), 'hex')
         FROM generate_series(1, 250000) i",
    );
    let before = pg.fingerprint("shop");
    let env = Env::new();
    env.init();
    let first = dump_and_back_up(&env, &pg, "shop", "shop.sql");
    let dump_len = first["bytes_read"].as_u64().unwrap();
    assert!(dump_len > 30 << 20, "dump of only {dump_len} bytes");
    let first_id = first["snapshot_id"].as_str().unwrap().to_string();

    // A day of changes, in one transaction: a run of rows updated, some deleted, some added.
    // The rows are too large for any page's leftover space, so the heap (and the dump, which
    // follows it) changes in three places rather than in every page.
    let note = "repeat('changed', 80)";
    pg.sql(
        "shop",
        &format!(
            "UPDATE orders SET amount = amount + 1, note = {note} WHERE id BETWEEN 40000 AND 40100;
             DELETE FROM orders WHERE id BETWEEN 90000 AND 90050;
             INSERT INTO orders SELECT i, 'new', 1, now(), {note}, NULL
             FROM generate_series(250001, 251000) i"
        ),
    );
    let after = pg.fingerprint("shop");
    assert_ne!(before, after);
    let out = back_up_dump_command(&env, &pg, "shop", "shop.sql");
    assert!(
        out.status.success(),
        "backup --stdin-from-command: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = last_json(&String::from_utf8_lossy(&out.stdout));
    // Content-defined chunks: the changed dump stores only the chunks around the changed places
    // (those three, and pg_dump's random `\restrict` key at its start and end).
    let (new, dedup) = (
        second["chunks_new"].as_u64().unwrap(),
        second["chunks_deduplicated"].as_u64().unwrap(),
    );
    assert!(
        dedup > new,
        "second dump: {new} chunks new, {dedup} deduplicated"
    );

    // A dump that fails saves no snapshot (with a shell pipe, its partial output would be one).
    let failed = back_up_dump_command(&env, &pg, "no_such_db", "shop.sql");
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("no snapshot saved"), "{stderr}");
    let listed = env.ok(&["snapshots", "--json"]);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&listed)
            .unwrap()
            .len(),
        2
    );

    // The first snapshot, restored and loaded into a new database, holds the rows it was taken
    // of (byte comparison with a new dump would fail on pg_dump's random `\restrict` key).
    let target = env.path("out1");
    env.ok(&["restore", &first_id, "--target", target.to_str().unwrap()]);
    let file = target.join("shop.sql");
    assert_eq!(fs::metadata(&file).unwrap().len(), dump_len);
    let mut cat = Command::new("cat");
    cat.arg(&file);
    pg.load("shop_first", cat);
    assert_eq!(pg.fingerprint("shop_first"), before);
    // The latest straight from the repository into psql: `dump latest /shop.sql | psql`.
    let mut dump = env.cmd();
    dump.args(["dump", "latest", "/shop.sql"]);
    pg.load("shop_latest", dump);
    assert_eq!(pg.fingerprint("shop_latest"), after);
    env.ok(&["check", "--read-data"]);
}
