//! Progress bars on a terminal (indicatif); nothing when stderr is not a terminal or with --json.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use backup_to_s3::progress::Progress;

pub struct Bar {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Bar {
    /// A bytes-and-items bar; hidden unless stderr is a terminal and output is for humans.
    pub fn new(enabled: bool, quiet: bool, verb: &str) -> Bar {
        if !enabled || quiet || !std::io::stderr().is_terminal() {
            return Bar { bar: None, quiet };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
        let style = ProgressStyle::with_template(&format!(
            "{verb} {{spinner}} [{{elapsed_precise}}] {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} {{pos}} files  ETA {{eta}}  {{wide_msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        Bar {
            bar: Some(bar),
            quiet,
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn wants_totals(&self) -> bool {
        self.bar.is_some()
    }
    fn set_total(&self, _files: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_length(bytes);
        }
    }
    fn add_bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    fn add_item(&self, _n: u64) {}
    fn set_current(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
        }
    }
    fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
}
