//! A one-line progress bar on stderr for long reads of a capture.
//!
//! It draws only when stderr is a terminal, and only once the work has taken
//! longer than [`DELAY`], so short runs and pipes see nothing; it redraws at
//! most every [`INTERVAL`] and clears its line when done.

use std::io::{self, Write};
use std::time::{Duration, Instant};

/// How long the work must take before the bar appears.
const DELAY: Duration = Duration::from_millis(500);
/// The shortest time between two redraws.
const INTERVAL: Duration = Duration::from_millis(100);
/// Characters of the bar itself.
const WIDTH: u64 = 30;

/// A progress bar over `total` bytes.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    total: u64,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A bar over `total` bytes, drawn only if `terminal`.
    pub fn new(terminal: bool, total: u64) -> Self {
        Progress {
            enabled: terminal && total > 0,
            total,
            started: Instant::now(),
            last_draw: None,
        }
    }

    /// Reports `done` bytes.
    pub fn update(&mut self, done: u64) {
        if !self.enabled || self.started.elapsed() < DELAY {
            return;
        }
        let now = Instant::now();
        if self.last_draw.is_some_and(|t| now - t < INTERVAL) {
            return;
        }
        self.last_draw = Some(now);
        let _ = write!(io::stderr().lock(), "\r{}", render(done, self.total));
    }

    /// Clears the bar, if it was drawn.
    pub fn finish(&mut self) {
        if self.last_draw.take().is_some() {
            let _ = write!(io::stderr().lock(), "\r\x1b[2K");
        }
    }
}

/// `[=====>      ]  42%  12.3 / 29.0 MiB`.
fn render(done: u64, total: u64) -> String {
    let done = done.min(total);
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let mut bar = "=".repeat(filled as usize);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat((WIDTH - filled - 1) as usize));
    }
    format!(
        "[{bar}] {percent:>3}%  {:.1} / {:.1} MiB",
        mib(done),
        mib(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_bytes_read() {
        assert_eq!(
            render(0, 1 << 20),
            format!("[>{}]   0%  0.0 / 1.0 MiB", " ".repeat(29))
        );
        assert_eq!(
            render(1 << 19, 1 << 20),
            format!(
                "[{}>{}]  50%  0.5 / 1.0 MiB",
                "=".repeat(15),
                " ".repeat(14)
            )
        );
        assert_eq!(
            render(2 << 20, 1 << 20),
            format!("[{}] 100%  1.0 / 1.0 MiB", "=".repeat(30))
        );
    }

    #[test]
    fn nothing_is_drawn_off_a_terminal() {
        let mut progress = Progress::new(false, 100);
        progress.update(50);
        assert!(progress.last_draw.is_none());
        progress.finish();
    }
}
