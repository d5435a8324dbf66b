//! The pictures of a training run: learning curves, the confusion matrix, the worst mistakes.

use crate::Picture;
use crate::canvas::{BLACK, Canvas, GRAY, LINE};
use crate::charts::{Chart, Series, line_chart};
use crate::colormap::viridis;

const MARGIN: u32 = 10;
/// Per-epoch values of one metric, for training and validation.
pub struct Curve<'a> {
    pub title: &'a str,
    /// What the metric is, for the y axis.
    pub label: &'a str,
    pub train: &'a [f64],
    pub valid: &'a [f64],
}

/// Loss and accuracy per epoch, training and validation, side by side.
pub fn curves(loss: Curve, accuracy: Curve) -> Canvas {
    let (w, h) = (480, 340);
    let mut canvas = Canvas::new(2 * w, h);
    for (i, curve) in [loss, accuracy].iter().enumerate() {
        let by_epoch = |values: &[f64]| -> Vec<(f64, f64)> {
            values
                .iter()
                .enumerate()
                .map(|(e, &v)| ((e + 1) as f64, v))
                .collect()
        };
        let chart = Chart {
            title: curve.title,
            x_label: "epoch",
            y_label: curve.label,
            log_x: false,
            series: vec![
                Series {
                    name: "training",
                    points: by_epoch(curve.train),
                },
                Series {
                    name: "validation",
                    points: by_epoch(curve.valid),
                },
            ],
            mark: None,
        };
        let panel = line_chart(&chart, w, h);
        image::imageops::overlay(&mut canvas.image, &panel.image, i as i64 * i64::from(w), 0);
    }
    canvas
}

/// `counts[true][predicted]` as coloured cells (each row on its own share), with the counts and
/// the class names; `title` names the split.
pub fn confusion(counts: &[Vec<usize>], classes: &[String], title: &str) -> Canvas {
    let n = classes.len() as u32;
    let cell = 36;
    let label_width = classes
        .iter()
        .map(|c| (c.len().min(14) as u32 + 3) * 8)
        .max()
        .unwrap_or(0)
        + 8;
    let left = MARGIN + label_width;
    let top = MARGIN + 2 * (LINE + 4);
    let mut canvas = Canvas::new(
        left + n * cell + MARGIN,
        top + n * cell + (LINE + 4) * 2 + MARGIN,
    );
    canvas.text(MARGIN, MARGIN, title, BLACK, 1);
    canvas.text(
        left,
        MARGIN + LINE + 4,
        "columns: the predicted class, by number",
        GRAY,
        1,
    );
    for (t, row) in counts.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f32;
        let y = top + t as u32 * cell;
        let name: String = format!("{t:>2} {}", classes[t].chars().take(14).collect::<String>());
        canvas.text(MARGIN, y + cell / 2 - 4, &name, BLACK, 1);
        for (p, &count) in row.iter().enumerate() {
            let x = left + p as u32 * cell;
            let share = count as f32 / total;
            canvas.rect(x, y, cell - 1, cell - 1, viridis(share));
            let text = count.to_string();
            let color = if share > 0.6 { BLACK } else { [255, 255, 255] };
            canvas.text(
                x + (cell - 8 * text.len() as u32) / 2,
                y + cell / 2 - 4,
                &text,
                color,
                1,
            );
        }
    }
    let bottom = top + n * cell + 4;
    for p in 0..n {
        let number = p.to_string();
        let x = left + p * cell + (cell - 8 * number.len() as u32) / 2;
        canvas.text(x, bottom, &number, BLACK, 1);
    }
    canvas
}

/// One wrongly classified picture: what it is and what the network said.
pub struct Mistake<'a> {
    pub picture: &'a Picture,
    pub truth: &'a str,
    pub predicted: &'a str,
    pub probability: f32,
}

/// The pictures enlarged `scale` times, each captioned "truth" / "→ predicted (p%)".
pub fn mistakes(items: &[Mistake], scale: u32, per_row: usize) -> Canvas {
    let side = items.first().map_or(32, |m| m.picture.side as u32) * scale;
    let cell_w = side.max(15 * 8) + MARGIN;
    let cell_h = side + 2 * (LINE + 2) + MARGIN;
    let rows = items.len().div_ceil(per_row.max(1)) as u32;
    let mut canvas = Canvas::new(
        MARGIN + per_row as u32 * cell_w,
        MARGIN + rows.max(1) * cell_h,
    );
    if items.is_empty() {
        canvas.text(MARGIN, MARGIN, "no misclassified images", BLACK, 1);
    }
    for (i, item) in items.iter().enumerate() {
        let (x, y) = (
            MARGIN + (i % per_row) as u32 * cell_w,
            MARGIN + (i / per_row) as u32 * cell_h,
        );
        let s = item.picture.side;
        let colors: Vec<[u8; 3]> = (0..s * s)
            .map(|p| item.picture.pixel(p % s, p / s))
            .collect();
        canvas.blit(x, y, s, &colors, scale);
        let truth: String = item.truth.chars().take(15).collect();
        canvas.text(x, y + side + 2, &truth, BLACK, 1);
        let said: String = format!("{} {:.0}%", item.predicted, 100.0 * item.probability)
            .chars()
            .take(15)
            .collect();
        canvas.text(x, y + side + LINE + 4, &said, [200, 30, 30], 1);
    }
    canvas
}
