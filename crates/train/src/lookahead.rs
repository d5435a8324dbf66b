//! airbench's Lookahead-style averaging: every few steps the weights (and BatchNorm's running
//! statistics) move to a running average of themselves, which then holds them; the average keeps
//! more of its past as training goes on (`decay · (step / steps)³`), and the last step ends on the
//! average. Unlike the moving average of `ema_decay`, it changes what trains.

use crate::ema::Ema;
use crate::network::Network;

/// How often the weights are pulled to the average, and how much of itself the average keeps at
/// the stage's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pull {
    pub every: usize,
    pub decay: f64,
}

/// The average, and where the stage's steps end.
pub struct Lookahead<M> {
    pub average: Ema<M>,
    pull: Pull,
    total_steps: usize,
}

impl<M: Network> Lookahead<M> {
    /// An average starting at `average` (in validation mode), for a stage of `total_steps`.
    pub fn new(average: M, pull: Pull, total_steps: usize) -> Self {
        Self {
            average: Ema::new(average, pull.decay),
            pull,
            total_steps,
        }
    }

    /// `model` after step `step` of the stage (from 0): pulled to the updated average every
    /// `every` steps, and set to it after the last.
    pub fn after_step(&mut self, model: M, step: usize) -> M {
        let done = step + 1;
        let pulls = done.is_multiple_of(self.pull.every);
        if pulls {
            let progress = done as f64 / self.total_steps.max(1) as f64;
            self.average
                .blend(&model, self.pull.decay * progress.powi(3));
        }
        if pulls || done == self.total_steps {
            self.average.imposed_on(model)
        } else {
            model
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::prelude::*;

    use super::*;
    use crate::network::Network;

    #[derive(Module, Debug)]
    struct Line {
        linear: Linear,
    }

    impl Network for Line {
        type Input = Tensor<2>;
        fn logits(&self, input: Tensor<2>) -> Tensor<2> {
            self.linear.forward(input)
        }
    }

    fn weight(line: &Line) -> f32 {
        models::values(line.linear.weight.val())[0]
    }

    fn with_weight(line: Line, value: f32) -> Line {
        let mut line = line;
        line.linear.weight = line
            .linear
            .weight
            .map(|w| (w.detach().zeros_like() + value).require_grad());
        line
    }

    #[test]
    fn every_few_steps_the_weights_move_to_the_rising_average() {
        let device = Device::flex().autodiff();
        let line = Line {
            linear: LinearConfig::new(1, 1).with_bias(false).init(&device),
        };
        let line = with_weight(line, 0.0);
        let id = line.linear.weight.id;
        let pull = Pull {
            every: 2,
            decay: 0.5,
        };
        let mut lookahead = Lookahead::new(line.valid(), pull, 5);
        // Step 0: no pull.
        let line = lookahead.after_step(with_weight(line, 1.0), 0);
        assert_eq!(weight(&line), 1.0);
        // Step 1 (2 done): keep 0.5 · (2/5)³ = 0.032 of the average (0).
        let line = lookahead.after_step(line, 1);
        assert!((weight(&line) - 0.968).abs() < 1e-6, "{}", weight(&line));
        assert_eq!(
            line.linear.weight.id, id,
            "the optimizer's state stays the parameter's"
        );
        assert!(
            line.linear.weight.val().is_require_grad(),
            "it still trains"
        );
        // Steps 2 and 3 (4 done): keep 0.5 · (4/5)³ = 0.256 of 0.968.
        let line = lookahead.after_step(with_weight(line, 2.0), 2);
        let line = lookahead.after_step(line, 3);
        let expected = 0.256 * 0.968 + 0.744 * 2.0;
        assert!((weight(&line) - expected).abs() < 1e-5, "{}", weight(&line));
        // The last step (5 done) ends on the average without moving it.
        let line = lookahead.after_step(with_weight(line, 9.0), 4);
        assert!((weight(&line) - expected).abs() < 1e-5, "{}", weight(&line));
    }
}
