//! Progress on stderr while the CLI waits (for a login approval, a grant approval): a spinner
//! on a terminal, plain lines otherwise, so logs and pipes get no control codes.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A wait in progress. Dropping it clears the spinner.
#[derive(Debug)]
pub struct Progress {
    /// The spinner, when stderr is a terminal.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts waiting with `message` (no trailing punctuation): a spinner with the elapsed time
    /// on a terminal, else the message once, as a line ending in `...`.
    pub fn start(message: impl Into<String>) -> Self {
        let message = message.into();
        if !std::io::stderr().is_terminal() {
            eprintln!("{message}...");
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar: Some(bar) }
    }

    /// Prints a line on stderr (above the spinner, which keeps spinning).
    pub fn line(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Ends the wait and clears the spinner.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
