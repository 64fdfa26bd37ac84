//! `backup --stdin-from-command`: back up what a command writes to its standard output, and save
//! no snapshot unless the command succeeds. With a shell pipe (`pg_dump | backup --stdin`) a
//! dump that fails half way looks like a short, complete stream and becomes a snapshot.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::{Context, Result};

/// The running command's standard output; at its end, the command's exit status decides
/// whether the stream is complete (`Ok(0)`) or failed (an error, so the backup saves nothing).
pub struct CommandOutput {
    child: Child,
    stdout: ChildStdout,
    name: String,
    finished: bool,
}

impl CommandOutput {
    /// Start `argv` with its standard output piped to us; its standard error stays the
    /// terminal's, so the operator sees what it says.
    pub fn spawn(argv: &[OsString]) -> Result<CommandOutput> {
        let (program, args) = argv.split_first().context("no command given")?;
        let name = program.to_string_lossy().into_owned();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {name}"))?;
        let stdout = child
            .stdout
            .take()
            .with_context(|| format!("{name}: no standard output"))?;
        Ok(CommandOutput {
            child,
            stdout,
            name,
            finished: false,
        })
    }
}

impl Read for CommandOutput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finished = true;
            let status = self.child.wait()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "command {} failed ({status}): no snapshot saved",
                    self.name
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for CommandOutput {
    /// A backup that stopped early (an error, Ctrl-C) does not leave the command running.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(cmd: &str) -> Vec<OsString> {
        ["sh", "-c", cmd].iter().map(OsString::from).collect()
    }

    #[test]
    fn a_successful_command_is_read_to_its_end() {
        let mut out = Vec::new();
        let mut src = CommandOutput::spawn(&argv("printf 'dump data'")).unwrap();
        src.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"dump data");
    }

    #[test]
    fn a_failing_command_fails_the_stream_at_its_end() {
        let mut out = Vec::new();
        let mut src = CommandOutput::spawn(&argv("printf partial; exit 3")).unwrap();
        let err = src.read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        assert_eq!(out, b"partial");
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let argv = vec![OsString::from("/nonexistent/backup-to-s3-test")];
        assert!(CommandOutput::spawn(&argv).is_err());
        assert!(CommandOutput::spawn(&[]).is_err());
    }
}
