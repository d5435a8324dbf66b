//! The learning-rate finder (fastai's `lr_find`, after Leslie Smith): a fresh copy of the
//! config's network takes training steps at a learning rate rising exponentially from
//! [`START`] to [`END`] until the loss diverges; the loss against the rate suggests where to
//! train. Nothing of a run is touched: the network is new, the data read as a run reads it.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use rng::{Rng, Stream};
use serde::Serialize;
use viz::charts::{Chart, Series, line_chart};

use crate::config::TrainConfig;
use crate::examples::Examples;
use crate::network::Network;
use crate::step::Stepper;

pub const START: f64 = 1e-7;
pub const END: f64 = 10.0;
/// Steps of a sweep unless asked otherwise (fastai's `num_it` is 100; more steps, a smoother
/// curve).
pub const STEPS: usize = 200;
/// The sweep stops once the smoothed loss is this many times its minimum.
const DIVERGED: f64 = 4.0;
/// Weight of the past in the smoothed loss (fastai's).
const BETA: f64 = 0.98;

/// One step of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub lr: f64,
    pub loss: f64,
    /// The exponential moving average of the loss, bias-corrected.
    pub smoothed: f64,
}

/// The sweep and what it suggests.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub points: Vec<Point>,
    /// The steps asked for; fewer were taken if the loss diverged.
    pub steps: usize,
    /// Where the smoothed loss falls fastest against the logarithm of the rate.
    pub steepest: f64,
    /// A tenth of the rate at the smoothed loss's minimum.
    pub minimum_tenth: f64,
}

/// Sweep the learning rate over `steps` steps (at least 2) of `model` training on `train` with
/// the config's optimizer, batch size, loss and seed.
pub fn sweep<M: Network>(
    mut model: M,
    train: &dyn Examples<M::Input>,
    config: &TrainConfig,
    devices: &[Device],
    steps: usize,
) -> Sweep {
    let steps = steps.max(2);
    let stepper = Stepper::new(config.smoothing(), config.optimizer.shift_scale(), devices);
    let per_batch = config.optimizer.per_batch(config.batch_size);
    let mut optimizer = crate::optimizer::optimizer(&per_batch);
    // The rates are recorded in the config's units (per 1,024 examples where it counts so).
    let unit = per_batch.lr / config.optimizer.lr;
    let batch_size = config.batch_size.min(train.len());
    let batches = train.len().div_ceil(batch_size);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut points: Vec<Point> = Vec::with_capacity(steps);
    let mut average = 0.0;
    let progress = data::progress::Progress::new(
        "finding the learning rate",
        steps as u64,
        data::progress::Unit::Items("steps"),
    );
    for step in 0..steps {
        let (epoch, at) = (step / batches, step % batches);
        let seed = rng::derive(config.seed, Stream::Epoch, epoch as u64);
        if at == 0 {
            order = (0..train.len()).collect();
            Rng::new(seed).shuffle(&mut order);
        }
        let indices = &order[at * batch_size..((at + 1) * batch_size).min(order.len())];
        let lr = START * (END / START).powf(step as f64 / (steps - 1) as f64);
        let shards = stepper.batch(
            train,
            indices,
            rng::derive(seed, Stream::Batch, at as u64),
            epoch,
        );
        let Ok((next, tally)) = stepper.step(model, shards, &mut optimizer, lr, None) else {
            break;
        };
        model = next;
        progress.inc(1);
        let loss = tally.loss_sum / tally.examples as f64;
        average = BETA * average + (1.0 - BETA) * loss;
        let smoothed = average / (1.0 - BETA.powi(step as i32 + 1));
        points.push(Point {
            lr: lr / unit,
            loss,
            smoothed,
        });
        let best = points
            .iter()
            .map(|p| p.smoothed)
            .fold(f64::INFINITY, f64::min);
        if !smoothed.is_finite() || smoothed > DIVERGED * best {
            break;
        }
    }
    progress.finish();
    let (steepest, minimum_tenth) = suggest(&points);
    Sweep {
        points,
        steps,
        steepest,
        minimum_tenth,
    }
}

/// The steepest descent of the smoothed loss against `ln(lr)` before its minimum (the first tenth
/// of the sweep left out, where the average has seen few steps), and a tenth of the minimum's rate.
fn suggest(points: &[Point]) -> (f64, f64) {
    let Some(lowest) =
        (0..points.len()).min_by(|&a, &b| points[a].smoothed.total_cmp(&points[b].smoothed))
    else {
        return (START, START);
    };
    let minimum_tenth = points[lowest].lr / 10.0;
    let skip = points.len() / 10;
    let steepest = (skip.max(1)..=lowest)
        .map(|i| {
            let (a, b) = (&points[i - 1], &points[i]);
            (i, (b.smoothed - a.smoothed) / (b.lr.ln() - a.lr.ln()))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(minimum_tenth, |(i, _)| points[i].lr);
    (steepest, minimum_tenth)
}

/// Write `<dir>/<name>-lr-find.csv` and `.png`, print the suggestion, and return the files.
pub fn report(sweep: &Sweep, dir: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let mut csv = String::from("step,lr,loss,smoothed_loss\n");
    for (step, p) in sweep.points.iter().enumerate() {
        csv += &format!("{},{:e},{:.6},{:.6}\n", step + 1, p.lr, p.loss, p.smoothed);
    }
    let csv_path = dir.join(format!("{name}-lr-find.csv"));
    data::fetch::write_atomic(&csv_path, csv.as_bytes())?;
    let chart = Chart {
        title: "loss against the learning rate",
        x_label: "learning rate (log scale)",
        y_label: "training loss",
        log_x: true,
        y_range: y_range(&sweep.points),
        series: vec![
            Series {
                name: "loss of each step",
                points: sweep.points.iter().map(|p| (p.lr, p.loss)).collect(),
            },
            Series {
                name: "smoothed",
                points: sweep.points.iter().map(|p| (p.lr, p.smoothed)).collect(),
            },
        ],
        mark: Some((sweep.steepest, format!("suggested {:.1e}", sweep.steepest))),
    };
    let png_path = dir.join(format!("{name}-lr-find.png"));
    data::fetch::write_atomic(&png_path, &line_chart(&chart, 720, 440).png())?;
    let first = sweep.points.first().map_or(START, |p| p.lr);
    let last = sweep.points.last().map_or(START, |p| p.lr);
    println!(
        "swept {} steps from lr {first:.1e} to {last:.1e}{}",
        sweep.points.len(),
        if sweep.points.len() < sweep.steps {
            " (stopped where the loss diverged)"
        } else {
            ""
        }
    );
    println!(
        "suggested lr: {:.2e} (where the smoothed loss falls fastest); {:.2e} is a tenth of the rate at its minimum",
        sweep.steepest, sweep.minimum_tenth
    );
    println!("set it with --set optimizer.lr={:.1e}", sweep.steepest);
    Ok(vec![csv_path, png_path])
}

/// From the lowest loss to a quarter above the first: where the loss diverged, the curve leaves
/// the chart instead of flattening the rest.
fn y_range(points: &[Point]) -> Option<(f64, f64)> {
    let first = points.first()?;
    let lowest = points
        .iter()
        .map(|p| p.loss.min(p.smoothed))
        .fold(f64::INFINITY, f64::min);
    Some((lowest, first.loss.max(first.smoothed) * 1.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suggestion_is_the_steepest_fall_before_the_minimum() {
        // A loss flat, then falling fastest around lr 1e-3, lowest at 1e-2, then rising.
        let points: Vec<Point> = (0..60)
            .map(|i| {
                let lr = 1e-6 * 10f64.powf(i as f64 / 10.0);
                let x = lr.log10();
                let smoothed =
                    2.0 - (1.0 + (-(x + 3.0) * 4.0).exp()).recip() + (x + 2.0).max(0.0) * 3.0;
                Point {
                    lr,
                    loss: smoothed,
                    smoothed,
                }
            })
            .collect();
        let (steepest, tenth) = suggest(&points);
        assert!((steepest.log10() + 3.0).abs() < 0.15, "{steepest}");
        assert!((tenth.log10() + 3.0).abs() < 0.15, "{tenth}");
        assert_eq!(suggest(&[]), (START, START));
    }
}
