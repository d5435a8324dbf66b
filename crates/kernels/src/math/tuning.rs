//! The fastest of several ways to compute the same values, chosen per problem by timing the
//! first calls on this machine, as cuDNN's benchmark mode chooses its convolutions: which way is
//! fastest depends on the CPU more than a rule can tell (the direct convolutions' tile shapes,
//! `direct::Correlation::run_fastest`). The ways must give the same bits, so that the choice
//! changes the time only: a seeded run repeats exactly whichever way each call took.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Timed calls per way before the choice is settled: the fastest of three, as the first call of
/// a problem also pays for its first allocations and a shared machine slows a call now and then.
pub(crate) const TRIALS: usize = 3;

/// The ways tried and the one chosen, per problem `K`.
#[derive(Debug)]
pub struct Tuner<K, C> {
    problems: Mutex<HashMap<K, Trials<C>>>,
}

impl<K, C> Default for Tuner<K, C> {
    fn default() -> Self {
        Self {
            problems: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, C: Copy + PartialEq> Tuner<K, C> {
    /// `compute` run with the way to take for `problem`: for its first calls each of `ways` in
    /// turn (the most promising first), each timed, and after that the fastest.
    pub fn run<T>(
        &self,
        problem: K,
        ways: impl FnOnce() -> Vec<C>,
        compute: impl FnOnce(C) -> T,
    ) -> T {
        let next = {
            let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
            let trials = problems
                .entry(problem.clone())
                .or_insert_with(|| Trials::new(ways()));
            trials.next()
        };
        let way = match next {
            Next::Settled(way) => return compute(way),
            Next::Trial(way) => way,
        };
        let start = Instant::now();
        let output = compute(way);
        let took = start.elapsed();
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(trials) = problems.get_mut(&problem) {
            trials.record(way, took);
        }
        output
    }
}

/// What to run next for one problem.
#[derive(Debug, PartialEq)]
enum Next<C> {
    Trial(C),
    Settled(C),
}

/// One problem's ways, how often each was timed and its fastest call.
#[derive(Debug)]
struct Trials<C> {
    ways: Vec<Timed<C>>,
}

#[derive(Debug)]
struct Timed<C> {
    way: C,
    runs: usize,
    fastest: Duration,
}

impl<C: Copy + PartialEq> Trials<C> {
    fn new(ways: Vec<C>) -> Self {
        assert!(!ways.is_empty(), "a problem needs a way to compute it");
        let ways = ways
            .into_iter()
            .map(|way| Timed {
                way,
                runs: 0,
                fastest: Duration::MAX,
            })
            .collect();
        Self { ways }
    }

    /// The way timed least often while any has fewer than [`TRIALS`] calls (the first listed on
    /// a tie), then the one whose fastest call was fastest.
    fn next(&self) -> Next<C> {
        const WAYS: &str = "a problem has at least one way";
        let least_timed = self.ways.iter().min_by_key(|t| t.runs).expect(WAYS);
        if self.ways.len() > 1 && least_timed.runs < TRIALS {
            return Next::Trial(least_timed.way);
        }
        Next::Settled(self.ways.iter().min_by_key(|t| t.fastest).expect(WAYS).way)
    }

    fn record(&mut self, way: C, took: Duration) {
        if let Some(timed) = self.ways.iter_mut().find(|t| t.way == way) {
            timed.runs += 1;
            timed.fastest = timed.fastest.min(took);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each way is timed three times, in turn, and the one with the fastest single call is kept,
    /// though its other calls were the slowest.
    #[test]
    fn times_each_way_in_turn_then_keeps_the_fastest_call() {
        let mut trials = Trials::new(vec!['a', 'b', 'c']);
        let ms = Duration::from_millis;
        let times = [
            ('a', 10),
            ('b', 9),
            ('c', 30),
            ('a', 11),
            ('b', 12),
            ('c', 5),
            ('a', 10),
            ('b', 9),
            ('c', 40),
        ];
        for (way, took) in times {
            assert_eq!(trials.next(), Next::Trial(way));
            trials.record(way, ms(took));
        }
        assert_eq!(trials.next(), Next::Settled('c'));
        trials.record('c', ms(100));
        assert_eq!(trials.next(), Next::Settled('c'));
    }

    #[test]
    fn a_single_way_is_settled_from_the_start() {
        assert_eq!(Trials::new(vec![7]).next(), Next::Settled(7));
    }

    /// The tuner returns what each call computed, runs each way [`TRIALS`] times per problem,
    /// and then only one, per problem.
    #[test]
    fn the_tuner_tries_every_way_per_problem_then_sticks_to_one() {
        let tuner = Tuner::default();
        for problem in ["x", "y"] {
            let mut ran = Vec::new();
            for call in 0..3 * TRIALS + 4 {
                let out = tuner.run(
                    problem,
                    || vec![1, 2, 3],
                    |way| {
                        ran.push(way);
                        call * 10 + way
                    },
                );
                assert_eq!(out, call * 10 + ran[call]);
            }
            let (trials, settled) = ran.split_at(3 * TRIALS);
            for way in [1, 2, 3] {
                assert_eq!(
                    trials.iter().filter(|&&w| w == way).count(),
                    TRIALS,
                    "{problem}"
                );
            }
            assert!(
                settled.iter().all(|&w| w == settled[0]),
                "{problem}: {settled:?}"
            );
        }
    }
}
