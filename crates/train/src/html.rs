//! `report.html`: one self-contained page per run, readable offline in any browser — the
//! config, the metrics per epoch, the curves, the final evaluation class by class, the confusion
//! matrix, the worst mistakes, the time and memory. The pictures are embedded as data URLs.

use std::fmt::Write;

use base64::Engine;

use crate::evaluate::ByClass;
use crate::finish::Summary;
use crate::fit::{EpochMetrics, Stop};

/// What the page shows.
pub struct Page<'a> {
    pub title: &'a str,
    pub config: &'a str,
    pub summary: &'a Summary,
    pub history: &'a [EpochMetrics],
    pub by_class: &'a ByClass,
    /// `(caption, PNG bytes)`, in order.
    pub pictures: &'a [(&'a str, Vec<u8>)],
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}\
pre{background:#f7f7f7;padding:1em;overflow-x:auto}.headline{font-size:1.3em}";

pub fn render(page: &Page) -> String {
    let s = page.summary;
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n",
        title = escape(page.title)
    );
    let memory = s
        .peak_memory_mib
        .map_or("unknown".to_string(), |m| format!("{m:.0} MiB"));
    let _ = writeln!(
        html,
        "<p class=\"headline\">{on} accuracy <b>{acc:.2}%</b>, loss {loss:.4}</p>\n<p>{epochs} epochs ({stop}), best epoch {best}; {train} training, {valid} validation images{skipped}; {seconds:.0} s; peak memory {memory}.</p>",
        on = s.evaluated_on,
        acc = 100.0 * s.accuracy,
        loss = s.loss,
        epochs = s.epochs_run,
        stop = match s.stop {
            Stop::Completed => "completed",
            Stop::EarlyStopping => "stopped early",
            Stop::Interrupted => "interrupted",
        },
        best = s.best_epoch.map_or("none".into(), |e| e.to_string()),
        train = s.train_images,
        valid = s.valid_images,
        skipped = if s.skipped_images > 0 {
            format!(", {} skipped", s.skipped_images)
        } else {
            String::new()
        },
        seconds = s.seconds,
    );
    html += "<h2>Metrics per epoch</h2>\n<table><tr><th>epoch</th><th>seconds</th><th>lr</th><th>loss</th><th>accuracy</th><th>val_loss</th><th>val_accuracy</th></tr>\n";
    let cell = |value: Option<f64>| value.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    for m in page.history {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{:.0}</td><td>{:.3e}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
            m.epoch,
            m.seconds,
            m.lr,
            m.loss,
            m.acc,
            cell(m.val_loss),
            cell(m.val_acc)
        );
    }
    html += "</table>\n";
    let engine = base64::engine::general_purpose::STANDARD;
    for (caption, png) in page.pictures {
        let _ = writeln!(
            html,
            "<h2>{}</h2>\n<img alt=\"{0}\" src=\"data:image/png;base64,{}\">",
            escape(caption),
            engine.encode(png)
        );
        if *caption == "Confusion matrix" {
            html += &class_tables(page.by_class, s.evaluated_on);
        }
    }
    let _ = writeln!(
        html,
        "<h2>Config</h2>\n<pre>{}</pre>\n</body></html>",
        escape(page.config)
    );
    html
}

fn class_tables(by_class: &ByClass, split: &str) -> String {
    let mut html = format!(
        "<h2>Per class ({split} split)</h2>\n<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>\n"
    );
    for m in &by_class.per_class {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
            escape(&m.class),
            m.precision,
            m.recall,
            m.f1,
            m.support
        );
    }
    html += "</table>\n<h2>Most confused</h2>\n<table><tr><th>actual</th><th>predicted</th><th>images</th></tr>\n";
    for pair in by_class.most_confused.iter().take(10) {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&pair.actual),
            escape(&pair.predicted),
            pair.count
        );
    }
    html + "</table>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
