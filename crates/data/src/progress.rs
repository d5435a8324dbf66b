//! Progress of long work: a bar on a terminal; elsewhere (a log file, CI, `nohup`), where a bar
//! prints nothing, a plain line — done/total, rate, time left — every [`plain_interval`].

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

/// What the counts are: items (named, e.g. "images", "steps") or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Items(&'static str),
    Bytes,
}

/// A progress report of `total` units of work named `what`.
pub struct Progress {
    bar: ProgressBar,
    plain: Option<Plain>,
}

struct Plain {
    what: String,
    unit: Unit,
    started: Instant,
    every: Duration,
    last: Mutex<Instant>,
}

/// How often the plain line prints: `CONVKIT_PROGRESS_SECONDS` (default 30).
pub fn plain_interval() -> Duration {
    let seconds = std::env::var("CONVKIT_PROGRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(30.0);
    Duration::from_secs_f64(seconds)
}

impl Progress {
    pub fn new(what: impl Into<String>, total: u64, unit: Unit) -> Self {
        let what = what.into();
        let counts = match unit {
            Unit::Items(_) => "{pos}/{len} [{elapsed} < {eta}, {per_sec}]",
            Unit::Bytes => "{bytes}/{total_bytes} [{elapsed} < {eta}, {bytes_per_sec}]",
        };
        let template = format!("{{prefix}} {{wide_bar}} {counts} {{msg}}");
        let bar = ProgressBar::new(total)
            .with_style(ProgressStyle::with_template(&template).expect("valid template"))
            .with_prefix(what.clone());
        let plain = (!std::io::stderr().is_terminal()).then(|| {
            let now = Instant::now();
            Plain {
                what,
                unit,
                started: now,
                every: plain_interval(),
                last: Mutex::new(now),
            }
        });
        Self { bar, plain }
    }

    /// `n` more units done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(plain) = &self.plain {
            let mut last = plain.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= plain.every {
                *last = Instant::now();
                eprintln!("{}", plain.line(self.bar.position(), self.bar.length()));
            }
        }
    }

    /// A note after the counts (a running loss, say).
    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Plain {
    fn line(&self, done: u64, total: Option<u64>) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / seconds;
        let amount = |n: u64| match self.unit {
            Unit::Items(_) => n.to_string(),
            Unit::Bytes => HumanBytes(n).to_string(),
        };
        let per_second = match self.unit {
            Unit::Items(name) => format!("{rate:.1} {name}/s"),
            Unit::Bytes => format!("{}/s", HumanBytes(rate as u64)),
        };
        match total.filter(|&t| t > 0) {
            Some(total) => {
                let left = total.saturating_sub(done) as f64 / rate.max(1e-9);
                format!(
                    "{}: {}/{} ({per_second}, {} left)",
                    self.what,
                    amount(done),
                    amount(total),
                    HumanDuration(Duration::from_secs_f64(left.min(1e9)))
                )
            }
            None => format!("{}: {} ({per_second})", self.what, amount(done)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_says_done_total_rate_and_time_left() {
        let plain = Plain {
            what: "extracting".into(),
            unit: Unit::Items("images"),
            started: Instant::now() - Duration::from_secs(10),
            every: Duration::ZERO,
            last: Mutex::new(Instant::now()),
        };
        let line = plain.line(100, Some(300));
        assert!(line.starts_with("extracting: 100/300 ("), "{line}");
        assert!(line.contains("images/s"), "{line}");
        assert!(line.contains("left)"), "{line}");
        let bytes = Plain {
            unit: Unit::Bytes,
            ..plain
        };
        assert!(bytes.line(2048, None).contains("2.00 KiB"));
    }
}
