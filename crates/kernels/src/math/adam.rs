//! One step of Adam on a parameter in a single pass over it, its gradient and its two moments,
//! on every core. Burn's `Adam` makes thirteen passes over whole tensors (each scaling, sum,
//! square, root and quotient), each on one thread: a tenth of the tutorial convnet's training
//! step. Every value goes through Burn's arithmetic in Burn's order, without fused
//! multiply-adds, so that the step is Burn's bit for bit.

use rayon::prelude::*;

/// Values per parallel task: large enough that scheduling costs nothing next to the work.
const CHUNK: usize = 1 << 14;

/// Adam's settings for one step, and how many steps it has taken with this one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// The L2 penalty: `penalty · θ` is added to the gradient (Burn's `WeightDecay`).
    pub penalty: Option<f32>,
    pub lr: f64,
    /// Steps taken, this one included: 1 for the first, whose moments start from the gradient
    /// alone.
    pub time: usize,
}

impl AdamStep {
    /// The step divides the first moment times `factor` by `√v + shift`: Burn's bias
    /// corrections, rounded as Burn rounds them.
    pub fn corrections(&self) -> (f32, f32) {
        let time = self.time as i32;
        let second = (1.0 - self.beta_2.powi(time)).sqrt();
        let factor = second / (1.0 - self.beta_1.powi(time));
        (factor, self.epsilon * second)
    }
}

/// Moves `param` one step against `grad`, updating the moments in place (at the first step
/// their values are not read).
pub fn step(
    param: &mut [f32],
    grad: &[f32],
    moment_1: &mut [f32],
    moment_2: &mut [f32],
    step: &AdamStep,
) {
    let n = param.len();
    assert!(grad.len() == n && moment_1.len() == n && moment_2.len() == n);
    let (factor, shift) = step.corrections();
    let (beta_1, beta_2) = (step.beta_1, step.beta_2);
    let (rest_1, rest_2) = (1.0 - beta_1, 1.0 - beta_2);
    let lr = step.lr as f32;
    let first = step.time == 1;
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(moment_1.par_chunks_mut(CHUNK))
        .zip(moment_2.par_chunks_mut(CHUNK))
        .for_each(|(((param, grad), moment_1), moment_2)| {
            let values = param.iter_mut().zip(grad).zip(moment_1).zip(moment_2);
            for (((p, &g), m), v) in values {
                let g = match step.penalty {
                    Some(penalty) => *p * penalty + g,
                    None => g,
                };
                let (scaled_g, scaled_g2) = (g * rest_1, (g * g) * rest_2);
                if first {
                    (*m, *v) = (scaled_g, scaled_g2);
                } else {
                    (*m, *v) = (*m * beta_1 + scaled_g, *v * beta_2 + scaled_g2);
                }
                *p -= (*m * factor) / (v.sqrt() + shift) * lr;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_step_moves_each_value_by_about_lr_against_its_gradient() {
        let mut param = vec![1.0, -2.0, 0.5, 0.0];
        let grad = [0.3, -4.0, 1e-3, 0.0];
        let (mut m, mut v) = (vec![7.0; 4], vec![7.0; 4]);
        let adam = AdamStep {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            penalty: None,
            lr: 0.01,
            time: 1,
        };
        step(&mut param, &grad, &mut m, &mut v, &adam);
        let moved: Vec<f32> = [1.0, -2.0, 0.5, 0.0]
            .iter()
            .zip(&param)
            .map(|(before, after)| before - after)
            .collect();
        for (moved, expected) in moved.iter().zip([0.01, -0.01, 0.01, 0.0]) {
            assert!((moved - expected).abs() < 1e-5, "{moved} vs {expected}");
        }
        assert_eq!(m[3], 0.0);
        assert_eq!(m[0], 0.3 * (1.0 - 0.9));
        assert_eq!(v[1], 16.0 * (1.0 - 0.999));
    }
}
