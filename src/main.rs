//! The `backup-to-s3` binary: parses arguments, sets up logging, runs a command, maps the
//! outcome to an exit code (README "Exit codes").

mod cli;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BACKUP_TO_S3_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("backup_to_s3={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let code = match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            cli::exit_code(&e)
        }
    };
    std::process::exit(code);
}
