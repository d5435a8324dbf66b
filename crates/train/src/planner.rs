//! The time budget: how many epochs fit in what is left of it, from the speed of a few of the
//! very training steps the loop takes ([`Stepper::step`]), on copies that are then thrown away.

use std::time::Instant;

use burn::optim::ModuleOptimizer;

use crate::ema::Ema;
use crate::examples::Examples;
use crate::network::Network;
use crate::step::Stepper;

/// What the planner knows of the stage and the run.
pub struct Budget {
    /// The whole run's budget.
    pub minutes: f64,
    /// Seconds the run has used so far.
    pub elapsed: f64,
    /// Most epochs the stage may train.
    pub epochs: usize,
    pub batch_size: usize,
    /// Forward passes per example in the final evaluation (test-time views).
    pub final_passes: usize,
}

/// The estimate was off by up to 3.5% either way in 30-minute runs here (83 s an epoch planned,
/// 84-86 s run): planned with this much to spare, the run ends inside its budget.
const SPARE: f64 = 1.04;

/// How many epochs (at least 1, at most `budget.epochs`) fit in what is left of the budget: a
/// training epoch, its validation and the final evaluation timed from [`seconds_per_step`].
pub fn affordable_epochs<M: Network>(
    model: &M,
    optimizer: ModuleOptimizer,
    train: &dyn Examples<M::Input>,
    valid_len: usize,
    stepper: &Stepper,
    ema_decay: Option<f64>,
    budget: &Budget,
) -> usize {
    let step = seconds_per_step(
        model,
        optimizer,
        train,
        budget.batch_size,
        stepper,
        ema_decay,
    );
    let steps = train.len().div_ceil(budget.batch_size) as f64;
    // A forward pass costs about a third of a training step.
    let validation = steps * step / 3.0 * valid_len as f64 / train.len().max(1) as f64;
    let epoch = steps * step + validation;
    // The final evaluation (one pass per test-time view) and the pictures.
    let left =
        budget.minutes * 60.0 - budget.elapsed - validation * (budget.final_passes as f64 + 1.0);
    let epochs = ((left / (epoch * SPARE)).floor().max(1.0) as usize).min(budget.epochs);
    println!(
        "time budget {} min: about {epoch:.0} s per epoch, {:.0} s left: training {epochs} epochs",
        budget.minutes,
        left.max(0.0)
    );
    epochs
}

/// Seconds one training step of `model` takes on batches of `batch_size` from `train`, timed
/// over a few steps after some to warm up, on copies that are then thrown away.
fn seconds_per_step<M: Network>(
    model: &M,
    mut optimizer: ModuleOptimizer,
    train: &dyn Examples<M::Input>,
    batch_size: usize,
    stepper: &Stepper,
    ema_decay: Option<f64>,
) -> f64 {
    // The first steps are slower (the allocator's pool fills, pages fault in, the convolutions
    // time their tile shapes): timed after one warm-up step, fastnet's epochs ran 10% faster
    // than planned (after three, 7%). Training reads its batches on another thread, so they are
    // made before the clock starts (timed with the steps, the plan was 3% long).
    const WARM_UP: usize = kernels::math::direct::TUNING_CALLS;
    const TIMED: usize = 5;
    let order: Vec<usize> = (0..train.len()).collect();
    let batches: Vec<_> = order
        .chunks(batch_size)
        .cycle()
        .take(WARM_UP + TIMED)
        .enumerate()
        .map(|(step, indices)| stepper.batch(train, indices, step as u64, 1))
        .collect();
    let mut model = model.clone();
    let mut ema = ema_decay.map(|decay| Ema::new(model.valid(), decay));
    let mut started = Instant::now();
    let mut timed = 0;
    for (step, shards) in batches.into_iter().enumerate() {
        if step == WARM_UP {
            started = Instant::now();
        }
        let ema = ema.as_mut().map(|ema| (ema, step));
        // A loss that is not finite ends the timing; the loop will report it.
        model = match stepper.step(model, shards, &mut optimizer, 1e-6, ema) {
            Ok((model, _)) => model,
            Err(_) => break,
        };
        timed = (step + 1).saturating_sub(WARM_UP);
    }
    started.elapsed().as_secs_f64() / timed.max(1) as f64
}
