//! The pictures of a training run: learning curves, the confusion matrix, the worst mistakes.

use crate::Picture;
use crate::canvas::{BLACK, Canvas, LINE};
use plotters::prelude::*;

use crate::charts::{self, Chart, Series, line_chart};
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

/// Loss and accuracy per epoch, training and validation (where there is any), side by side.
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
            y_range: None,
            series: [
                Series {
                    name: "training",
                    points: by_epoch(curve.train),
                },
                Series {
                    name: "validation",
                    points: by_epoch(curve.valid),
                },
            ]
            .into_iter()
            .filter(|series| !series.points.is_empty())
            .collect(),
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
    let n = classes.len() as i32;
    let cell = 40;
    let names: Vec<String> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{i}  {}", c.chars().take(18).collect::<String>()))
        .collect();
    let label_width = 8 + 7 * names.iter().map(|s| s.chars().count()).max().unwrap_or(0) as i32;
    let (left, top) = (label_width + 24, 64);
    let width = (left + n * cell + 16).max(420);
    let height = top + n * cell + 48;
    charts::paint(width as u32, height as u32, |root| {
        root.draw_text(title, &charts::text_style(16, BLACK), (12, 10))?;
        root.draw_text(
            "rows: the true class; columns: the predicted class, by number",
            &charts::text_style(13, [90, 90, 90]),
            (12, 34),
        )?;
        for (t, row) in counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f32;
            let y = top + t as i32 * cell;
            root.draw_text(
                &names[t],
                &charts::text_style(14, BLACK),
                (12, y + cell / 2 - 8),
            )?;
            for (p, &count) in row.iter().enumerate() {
                let x = left + p as i32 * cell;
                let share = count as f32 / total;
                let [r, g, b] = viridis(share);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 1, y + cell - 1)],
                    RGBColor(r, g, b).filled(),
                ))?;
                let text = count.to_string();
                let color = if share > 0.6 { BLACK } else { [255, 255, 255] };
                let style = charts::text_style(13, color);
                let (w, h) = root.estimate_text_size(&text, &style)?;
                root.draw_text(
                    &text,
                    &style,
                    (x + (cell - w as i32) / 2, y + (cell - h as i32) / 2),
                )?;
            }
        }
        let bottom = top + n * cell + 8;
        for p in 0..n {
            let number = p.to_string();
            let style = charts::text_style(14, BLACK);
            let (w, _) = root.estimate_text_size(&number, &style)?;
            root.draw_text(
                &number,
                &style,
                (left + p * cell + (cell - w as i32) / 2, bottom),
            )?;
        }
        Ok(())
    })
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
