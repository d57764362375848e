//! Progress for long work: an indicatif bar when stderr is a terminal, plain lines otherwise
//! (at most one a second), so logs and CI output stay readable.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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
pub fn have_bytes(stats: &bitswarm_runtime::TorrentStats) -> u64 {
    if stats.piece_count == 0 {
        return 0;
    }
    let piece = stats.total_length.div_ceil(u64::from(stats.piece_count));
    (piece * u64::from(stats.pieces_have)).min(stats.total_length)
}

/// Several bars shown together, one row each (the demo's peers): indicatif's `MultiProgress`
/// when stderr is a terminal, otherwise every row as a plain line, the whole block at most
/// every `PLAIN_TRANSFER_INTERVAL`.
pub struct MultiBars {
    rows: Vec<Row>,
    /// Drawn bars (terminal only; kept so they live as long as the rows).
    multi: Option<MultiProgress>,
    label_width: usize,
    started: Instant,
    last_block: Mutex<Option<Instant>>,
}

struct Row {
    label: String,
    bar: Option<ProgressBar>,
    /// Percent and message for plain lines.
    plain: Mutex<(u64, String)>,
}

impl MultiBars {
    /// Starts one bar per label, each towards `total`.
    pub fn new(labels: &[String], total: u64) -> Self {
        let label_width = labels.iter().map(String::len).max().unwrap_or(0);
        let multi = std::io::stderr().is_terminal().then(MultiProgress::new);
        let template = format!("{{prefix:<{label_width}}} [{{bar:30}}] {{percent:>3}}% {{msg}}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let rows = labels
            .iter()
            .map(|label| Row {
                label: label.clone(),
                bar: multi.as_ref().map(|m| {
                    let bar = m.add(ProgressBar::new(total));
                    bar.set_style(style.clone());
                    bar.set_prefix(label.clone());
                    bar
                }),
                plain: Mutex::new((0, String::new())),
            })
            .collect();
        Self {
            rows,
            multi,
            label_width,
            started: Instant::now(),
            last_block: Mutex::new(None),
        }
    }

    /// Sets row `row` to `done` of `total` with `message` beside it (shown at the next
    /// [`MultiBars::draw`] in plain mode).
    pub fn set(&self, row: usize, done: u64, total: u64, message: String) {
        let Some(r) = self.rows.get(row) else { return };
        if let Some(bar) = &r.bar {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(message);
        } else if let Ok(mut plain) = r.plain.lock() {
            let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
            *plain = (percent, message);
        }
    }

    /// In plain mode, prints every row if the interval has passed since the last block (or
    /// at once with `force`); bars redraw themselves.
    pub fn draw(&self, force: bool) {
        if self.multi.is_some() {
            return;
        }
        let now = Instant::now();
        let Ok(mut last) = self.last_block.lock() else {
            return;
        };
        if !force && last.is_some_and(|t| now.duration_since(t) < PLAIN_TRANSFER_INTERVAL) {
            return;
        }
        *last = Some(now);
        let secs = now.duration_since(self.started).as_secs_f64();
        let mut block = String::new();
        for r in &self.rows {
            let Ok(plain) = r.plain.lock() else { continue };
            let _ = writeln!(
                block,
                "[{secs:5.1} s] {:<width$} {:>3}% {}",
                r.label,
                plain.0,
                plain.1,
                width = self.label_width
            );
        }
        eprint!("{block}");
    }

    /// Leaves the final state of every bar on the terminal (plain mode: prints a last block).
    pub fn finish(&self) {
        for bar in self.rows.iter().filter_map(|r| r.bar.as_ref()) {
            bar.finish();
        }
        self.draw(true);
    }
}
