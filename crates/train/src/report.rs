//! The pictures every run leaves in its directory: `curves.png`, `confusion.png`, `mistakes.png`.
//! `report.html` ([`crate::html`]) shows them all on one page.

use std::path::PathBuf;

use data::ImageSet;
use viz::Picture;
use viz::plots::{self, Curve, Mistake};

use crate::evaluate::Output;
use crate::fit::EpochMetrics;
use crate::run_dir::RunDir;

/// How many of the highest-loss images `mistakes.png` shows.
const MISTAKES: usize = 24;

/// Draw the run's pictures; `outputs` are the best weights' answers on `pictures` (the split named
/// `split`). Returns the files written with their PNG bytes.
pub fn draw(
    run: &RunDir,
    history: &[EpochMetrics],
    classes: &[String],
    confusion: &[Vec<usize>],
    pictures: &ImageSet,
    outputs: &[Output],
    split: &str,
) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    // Without a validation split the validation series are empty.
    let series =
        |f: fn(&EpochMetrics) -> Option<f64>| history.iter().filter_map(f).collect::<Vec<_>>();
    let (loss, val_loss, acc, val_acc) = (
        series(|m| Some(m.loss)),
        series(|m| m.val_loss),
        series(|m| Some(m.acc)),
        series(|m| m.val_acc),
    );
    let curves = plots::curves(
        Curve {
            title: "loss per epoch",
            label: "cross-entropy",
            train: &loss,
            valid: &val_loss,
        },
        Curve {
            title: "accuracy per epoch",
            label: "accuracy",
            train: &acc,
            valid: &val_acc,
        },
    );
    let mut written = vec![save(run, "curves.png", &curves)?];
    for (name, canvas) in evaluation_pictures(classes, confusion, pictures, outputs, split) {
        written.push(save(run, name, &canvas)?);
    }
    Ok(written)
}

/// `confusion.png` (of `confusion`, as [`crate::evaluate::ByClass`] counts it) and
/// `mistakes.png` of `outputs`, the answers on `pictures` (the split or folder named `split`), by
/// file name.
pub fn evaluation_pictures(
    classes: &[String],
    confusion: &[Vec<usize>],
    pictures: &ImageSet,
    outputs: &[Output],
    split: &str,
) -> [(&'static str, viz::Canvas); 2] {
    let title = format!("{split}, {} images", outputs.len());
    let confusion = plots::confusion(confusion, classes, &title);

    let mut wrong: Vec<(usize, &Output)> = outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.label != o.predicted)
        .collect();
    wrong.sort_by(|a, b| b.1.loss.total_cmp(&a.1.loss));
    let shown: Vec<(Picture, &Output)> = wrong
        .iter()
        .take(MISTAKES)
        .map(|&(i, o)| {
            (
                Picture {
                    side: pictures.side,
                    planar: pictures.image(i).to_vec(),
                },
                o,
            )
        })
        .collect();
    let items: Vec<Mistake> = shown
        .iter()
        .map(|(picture, o)| Mistake {
            picture,
            truth: &classes[o.label],
            predicted: &classes[o.predicted],
            probability: o.probability,
        })
        .collect();
    let scale = (96 / pictures.side.max(1)).max(1) as u32;
    [
        ("confusion.png", confusion),
        ("mistakes.png", plots::mistakes(&items, scale, 8)),
    ]
}

fn save(run: &RunDir, name: &str, canvas: &viz::Canvas) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    let png = canvas.png();
    Ok((run.write(name, &png)?, png))
}
