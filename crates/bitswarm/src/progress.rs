//! Progress for long work: an indicatif bar when stderr is a terminal, plain lines otherwise
//! (at most one a second), so logs and CI output stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::units;

/// Least time between two plain progress lines.
const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(1);

/// Progress of a job measured in bytes, safe to update from several threads.
pub struct ByteProgress {
    label: String,
    total: u64,
    started: Instant,
    display: Display,
}

enum Display {
    Bar(ProgressBar),
    Lines { last: Mutex<Instant> },
}

impl Display {
    /// A bar drawn with `template` (its `{prefix}` is `label`) when stderr is a terminal,
    /// otherwise plain lines.
    fn new(total: u64, template: &str, label: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                last: Mutex::new(Instant::now()),
            };
        }
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::Bar(bar)
    }
}

impl ByteProgress {
    /// Starts showing progress of `label` towards `total` bytes.
    pub fn new(label: &str, total: u64) -> Self {
        let display = Display::new(
            total,
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            label,
        );
        Self {
            label: label.to_owned(),
            total,
            started: Instant::now(),
            display,
        }
    }

    /// Records that `done` bytes of the total are finished.
    pub fn set(&self, done: u64) {
        match &self.display {
            Display::Bar(bar) => bar.set_position(done),
            Display::Lines { last } => {
                let now = Instant::now();
                let Ok(mut last) = last.lock() else { return };
                if now.duration_since(*last) >= PLAIN_LINE_INTERVAL && done < self.total {
                    *last = now;
                    eprintln!("{}", self.line(done, now));
                }
            }
        }
    }

    /// Ends the display, leaving a final summary line.
    pub fn finish(&self) {
        let now = Instant::now();
        match &self.display {
            Display::Bar(bar) => bar.finish_and_clear(),
            Display::Lines { .. } => {}
        }
        let secs = now.duration_since(self.started).as_secs_f64();
        eprintln!(
            "{}: {} in {secs:.2} s ({}/s)",
            self.label,
            units::bytes(self.total),
            units::bytes(rate(self.total, secs))
        );
    }

    fn line(&self, done: u64, now: Instant) -> String {
        let secs = now.duration_since(self.started).as_secs_f64();
        let per_sec = rate(done, secs);
        let percent = done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        let eta = (self.total - done.min(self.total))
            .checked_div(per_sec)
            .map_or_else(|| "?".to_owned(), |s| format!("{s}s"));
        format!(
            "{}: {} of {} ({percent}%), {}/s, ETA {eta}",
            self.label,
            units::bytes(done),
            units::bytes(self.total),
            units::bytes(per_sec)
        )
    }
}

/// Bytes per second, rounded down; 0 when no time has passed.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation
)] // display only
fn rate(bytes: u64, secs: f64) -> u64 {
    if secs <= 0.0 {
        0
    } else {
        (bytes as f64 / secs) as u64
    }
}

/// Least time between two plain transfer progress lines.
const PLAIN_TRANSFER_INTERVAL: Duration = Duration::from_secs(2);
/// Time between repeated identical plain progress lines.
const PLAIN_IDLE_INTERVAL: Duration = Duration::from_secs(60);

/// Progress of a download or seed: percent, rates, peers, ETA.
pub struct TransferProgress {
    label: String,
    display: Display,
    last_line: Mutex<String>,
}

impl TransferProgress {
    /// Starts showing the transfer of `label`, `total` bytes in all.
    pub fn new(label: &str, total: u64) -> Self {
        let display = Display::new(
            total,
            "{prefix} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {msg}",
            label,
        );
        Self {
            label: label.to_owned(),
            display,
            last_line: Mutex::new(String::new()),
        }
    }

    /// Shows a new statistics snapshot.
    pub fn update(&self, stats: &bitswarm_runtime::TorrentStats) {
        let have = have_bytes(stats);
        let activity = match stats.state {
            bitswarm_runtime::TorrentState::Checking { checked, total } => {
                format!("checking {checked}/{total} pieces")
            }
            bitswarm_runtime::TorrentState::Seeding => "seeding".to_owned(),
            bitswarm_runtime::TorrentState::Paused => "paused".to_owned(),
            bitswarm_runtime::TorrentState::Failed => "failed".to_owned(),
            bitswarm_runtime::TorrentState::Downloading => "downloading".to_owned(),
        };
        let eta = stats
            .total_length
            .saturating_sub(have)
            .checked_div(stats.download_rate)
            .map_or_else(|| "-".to_owned(), |s| format!("{s}s"));
        let msg = format!(
            "{activity}, down {}/s, up {}/s, {} peers ({} seeds), ETA {eta}",
            units::bytes(stats.download_rate),
            units::bytes(stats.upload_rate),
            stats.peers,
            stats.seeds
        );
        match &self.display {
            Display::Bar(bar) => {
                bar.set_position(have);
                bar.set_message(msg);
            }
            Display::Lines { last } => {
                let now = Instant::now();
                let Ok(mut last) = last.lock() else { return };
                let percent = (u64::from(stats.pieces_have) * 100)
                    .checked_div(u64::from(stats.piece_count))
                    .unwrap_or(100);
                let line = format!("{}: {percent}% {msg}", self.label);
                let Ok(mut said) = self.last_line.lock() else {
                    return;
                };
                // A line every interval while something changes, every minute when idle.
                let quiet = if *said == line {
                    PLAIN_IDLE_INTERVAL
                } else {
                    PLAIN_TRANSFER_INTERVAL
                };
                if now.duration_since(*last) >= quiet {
                    *last = now;
                    eprintln!("{line}");
                    *said = line;
                }
            }
        }
    }

    /// Removes the bar (plain mode prints nothing more).
    pub fn finish(&self) {
        if let Display::Bar(bar) = &self.display {
            bar.finish_and_clear();
        }
    }
}

/// Approximate verified bytes: verified pieces times the piece size, capped at the total.
fn have_bytes(stats: &bitswarm_runtime::TorrentStats) -> u64 {
    if stats.piece_count == 0 {
        return 0;
    }
    let piece = stats.total_length.div_ceil(u64::from(stats.piece_count));
    (piece * u64::from(stats.pieces_have)).min(stats.total_length)
}
