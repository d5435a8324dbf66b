//! Which parameterized layers a forward pass ran and the shape each produced, recorded by
//! [`crate::layers`] while [`traced`] runs: what a model summary needs to give every layer its
//! output shape and multiply-adds without each network describing itself.

use std::cell::RefCell;

use burn::module::ParamId;

use crate::Channels;

/// A layer that ran: its weight (or BatchNorm scale) and the shape of its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traced {
    pub param: ParamId,
    pub output: Vec<usize>,
}

thread_local! {
    static TRACE: RefCell<Option<Vec<Traced>>> = const { RefCell::new(None) };
}

/// Run `f`, returning what it returned and the layers it ran on this thread, in order.
pub fn traced<R>(f: impl FnOnce() -> R) -> (R, Vec<Traced>) {
    let outer = TRACE.with(|trace| trace.replace(Some(Vec::new())));
    let result = f();
    let layers = TRACE.with(|trace| trace.replace(outer)).unwrap_or_default();
    (result, layers)
}

/// Note a layer's output, when tracing.
pub(crate) fn record(param: ParamId, output: &[usize]) {
    TRACE.with(|trace| {
        if let Some(layers) = trace.borrow_mut().as_mut() {
            layers.push(Traced {
                param,
                output: output.to_vec(),
            });
        }
    });
}

/// [`record`] for an output whose channels lie where `channels` says: summaries list every
/// layer's shape in Burn's order (`[batch, channels, …]`).
pub(crate) fn record_in(param: ParamId, output: &[usize], channels: Channels) {
    if output.len() < 2 {
        return record(param, output);
    }
    let first: Vec<usize> = channels
        .to_first(output.len())
        .into_iter()
        .map(|axis| output[axis])
        .collect();
    record(param, &first);
}
