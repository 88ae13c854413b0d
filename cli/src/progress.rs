//! Progress: bars on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Reports bytes moved for one file.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts reporting `label`, `total` bytes, of which `done` are already there.
    #[allow(clippy::print_stderr)]
    pub fn start(label: &str, total: u64, done: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template("{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_message(label.to_owned());
            bar.set_position(done);
            Self { bar: Some(bar) }
        } else {
            if done > 0 {
                eprintln!("{label}: resuming at {done} of {total} bytes");
            } else {
                eprintln!("{label}: {total} bytes");
            }
            Self { bar: None }
        }
    }

    /// `n` more bytes moved.
    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Done with this file.
    #[allow(clippy::print_stderr)]
    pub fn finish(self, label: &str, note: &str) {
        match self.bar {
            Some(bar) => bar.finish_with_message(format!("{label} {note}")),
            None => eprintln!("{label}: {note}"),
        }
    }
}
