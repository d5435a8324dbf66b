//! A fixed convolution (a whitening stem) keeps nothing from one training step to the next: the
//! bytes this process holds after many steps are those after the first few. Its own test binary,
//! since it counts every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::{conv2d, conv2d_fixed};

/// The system's allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system's allocator unchanged; only the count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `layout` are `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_fixed_convolution_keeps_no_inputs_between_steps() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let fixed = Conv2dConfig::new([3, 8], [3, 3]).init(&device);
    let trained = Conv2dConfig::new([8, 4], [3, 3]).init(&device);
    let batch = [16, 3, 32, 32];
    let input_bytes = (batch.iter().product::<usize>() * 4) as isize;
    let step = || {
        let x = Tensor::<4>::random(batch, Distribution::Normal(0.0, 1.0), &device);
        let y = conv2d(&trained, conv2d_fixed(&fixed, x));
        let grads = y.sum().backward();
        assert!(trained.weight.val().grad(&grads).is_some());
        assert!(fixed.weight.val().grad(&grads).is_none());
    };
    for _ in 0..5 {
        step();
    }
    // Over two windows of 20 steps, the smaller growth: a worker thread that first gets work
    // late (on a loaded machine) allocates its scratch once, in one window, while a node left
    // behind per step would grow both by at least one batch of inputs a step.
    let mut grown = Vec::new();
    for _ in 0..2 {
        let before = LIVE.load(Ordering::Relaxed);
        for _ in 0..20 {
            step();
        }
        grown.push(LIVE.load(Ordering::Relaxed) - before);
    }
    let least = *grown.iter().min().expect("two windows");
    assert!(
        least < 4 * input_bytes,
        "{grown:?} bytes more in two windows of 20 steps (one batch of inputs is {input_bytes})"
    );
}
