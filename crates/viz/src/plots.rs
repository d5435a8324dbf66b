//! The pictures of a training run: learning curves, the confusion matrix, the worst mistakes.

use crate::Picture;
use crate::canvas::{BLACK, Canvas, GRAY, LINE};
use crate::colormap::viridis;

const MARGIN: u32 = 10;
const TRAIN: [u8; 3] = [31, 119, 180];
const VALID: [u8; 3] = [255, 127, 14];

/// Per-epoch values of one metric, for training and validation.
pub struct Curve<'a> {
    pub title: &'a str,
    pub train: &'a [f64],
    pub valid: &'a [f64],
}

fn format_tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn draw_curve(canvas: &mut Canvas, left: u32, top: u32, w: u32, h: u32, curve: &Curve) {
    let values = curve
        .train
        .iter()
        .chain(curve.valid)
        .copied()
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    canvas.text(left, top, curve.title, BLACK, 1);
    let (px, py, pw, ph) = (left + 56, top + LINE + 4, w - 60, h - LINE - 24);
    canvas.line((px.into(), py.into()), (px.into(), (py + ph).into()), BLACK);
    canvas.line(
        (px.into(), (py + ph).into()),
        ((px + pw).into(), (py + ph).into()),
        BLACK,
    );
    canvas.text(left, py, &format_tick(hi), GRAY, 1);
    canvas.text(left, py + ph - 8, &format_tick(lo), GRAY, 1);
    let epochs = curve.train.len().max(curve.valid.len()).max(1);
    canvas.text(px, py + ph + 4, "1", GRAY, 1);
    let last = epochs.to_string();
    canvas.text(px + pw - 8 * last.len() as u32, py + ph + 4, &last, GRAY, 1);
    let point = |i: usize, v: f64| -> (i64, i64) {
        let x = px as f64
            + if epochs > 1 {
                i as f64 / (epochs - 1) as f64 * pw as f64
            } else {
                pw as f64 / 2.0
            };
        let y = (py + ph) as f64 - (v - lo) / (hi - lo) * ph as f64;
        (x.round() as i64, y.round() as i64)
    };
    for (series, color) in [(curve.train, TRAIN), (curve.valid, VALID)] {
        let points: Vec<_> = series
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| point(i, v))
            .collect();
        for pair in points.windows(2) {
            canvas.line(pair[0], pair[1], color);
        }
        for &(x, y) in &points {
            for (dx, dy) in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)] {
                canvas.put(x + dx, y + dy, color);
            }
        }
    }
}

/// Loss and accuracy per epoch, training and validation, side by side.
pub fn curves(loss: Curve, accuracy: Curve) -> Canvas {
    let (w, h) = (320, 220);
    let mut canvas = Canvas::new(2 * w + 3 * MARGIN, h + 2 * MARGIN + LINE + 4);
    draw_curve(&mut canvas, MARGIN, MARGIN, w, h, &loss);
    draw_curve(&mut canvas, 2 * MARGIN + w, MARGIN, w, h, &accuracy);
    let legend = MARGIN + h + 2;
    canvas.rect(MARGIN, legend + 2, 12, 4, TRAIN);
    canvas.text(MARGIN + 16, legend, "train", BLACK, 1);
    canvas.rect(MARGIN + 70, legend + 2, 12, 4, VALID);
    canvas.text(MARGIN + 86, legend, "validation", BLACK, 1);
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
