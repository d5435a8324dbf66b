//! The learning rate at each step: a linear warm-up from zero, then constant, cosine or linear
//! decay to a fraction of the base rate; or airbench's triangle. A pure function of the step, so a resumed run continues
//! the same curve.

use crate::config::{ScheduleConfig, ScheduleName};

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub config: ScheduleConfig,
    pub base_lr: f64,
    pub steps_per_epoch: usize,
    /// Steps in the whole stage.
    pub total_steps: usize,
}

impl Schedule {
    /// The learning rate of step `step` (0-based, counted from the stage's start).
    pub fn lr(&self, step: usize) -> f64 {
        if self.config.name == ScheduleName::Triangle {
            return self.base_lr * self.triangle(step);
        }
        let warmup = (self.config.warmup_epochs * self.steps_per_epoch as f64).round() as usize;
        if step < warmup {
            return self.base_lr * (step + 1) as f64 / warmup as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(warmup + 1).max(1);
        let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
        let last = self.config.final_lr_fraction;
        let fraction = match self.config.name {
            ScheduleName::Constant => 1.0,
            ScheduleName::Cosine => {
                last + (1.0 - last) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
            }
            ScheduleName::Linear => 1.0 - (1.0 - last) * progress,
            ScheduleName::Triangle => unreachable!("handled above"),
        };
        self.base_lr * fraction
    }

    /// The triangle's fraction of the base rate at `step`: `start_lr_fraction` at step 0, 1 at
    /// `peak_fraction` of the steps, `final_lr_fraction` at `total_steps` (as airbench
    /// interpolates, so the last step taken is just above it).
    fn triangle(&self, step: usize) -> f64 {
        let total = self.total_steps.max(1) as f64;
        let peak = (self.config.peak_fraction * total).round();
        let step = (step as f64).min(total);
        let (start, last) = (self.config.start_lr_fraction, self.config.final_lr_fraction);
        if step < peak {
            start + (1.0 - start) * step / peak
        } else {
            1.0 - (1.0 - last) * (step - peak) / (total - peak).max(1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(name: ScheduleName, warmup_epochs: f64) -> Schedule {
        Schedule {
            config: ScheduleConfig {
                name,
                warmup_epochs,
                final_lr_fraction: 0.1,
                ..ScheduleConfig::default()
            },
            base_lr: 2.0,
            steps_per_epoch: 10,
            total_steps: 50,
        }
    }

    #[test]
    fn warm_up_then_decay_to_the_final_fraction() {
        let cosine = schedule(ScheduleName::Cosine, 1.0);
        assert_eq!(cosine.lr(0), 0.2);
        assert_eq!(cosine.lr(9), 2.0);
        assert!((cosine.lr(10) - 2.0).abs() < 1e-12);
        assert!((cosine.lr(49) - 0.2).abs() < 1e-12);
        let lrs: Vec<f64> = (10..50).map(|s| cosine.lr(s)).collect();
        assert!(lrs.windows(2).all(|w| w[1] < w[0]), "{lrs:?}");
        let linear = schedule(ScheduleName::Linear, 0.0);
        assert_eq!(linear.lr(0), 2.0);
        assert!((linear.lr(49) - 0.2).abs() < 1e-12);
        assert!((linear.lr(49 / 2) - linear.lr(0) * 0.55).abs() < 0.05);
        let constant = schedule(ScheduleName::Constant, 0.5);
        assert_eq!(constant.lr(2), 1.2);
        assert_eq!(constant.lr(30), 2.0);
    }

    #[test]
    fn the_triangle_rises_from_its_start_to_the_peak_then_falls() {
        // airbench's: np.interp(step, [0, 0.2 · 50, 50], [0.2, 1, 0.1]) times the base rate.
        let triangle = Schedule {
            config: ScheduleConfig {
                name: ScheduleName::Triangle,
                warmup_epochs: 3.0,
                final_lr_fraction: 0.1,
                start_lr_fraction: 0.2,
                peak_fraction: 0.2,
            },
            ..schedule(ScheduleName::Triangle, 0.0)
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(triangle.lr(0), 0.4));
        assert!(close(triangle.lr(5), 2.0 * 0.6));
        assert!(close(triangle.lr(10), 2.0));
        assert!(close(triangle.lr(30), 2.0 * (1.0 - 0.9 * 0.5)));
        assert!(close(triangle.lr(49), 2.0 * (1.0 - 0.9 * 39.0 / 40.0)));
        assert!(close(triangle.lr(50), 0.2));
    }
}
