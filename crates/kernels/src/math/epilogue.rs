//! What an inference convolution does to each output plane as it writes it: add the channel's
//! bias and apply the activation, while the plane is still in cache, instead of two more passes
//! over the whole output (Burn's broadcast addition, then the activation).

/// The activation a convolution's output goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(x, 0)`, NaN staying NaN (Burn's `relu`).
    Relu,
    /// `min(max(x, 0), 6)`, NaN staying NaN (Burn's `clamp(0, 6)`).
    Relu6,
}

impl Activation {
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::Relu => {
                if passes_relu(x) {
                    x
                } else {
                    0.0
                }
            }
            Self::Relu6 => x.clamp(0.0, 6.0),
        }
    }
}

/// Where ReLU passes its input and its gradient, as Burn's does: above zero, and NaN.
#[inline(always)]
pub fn passes_relu(x: f32) -> bool {
    x.is_nan() || x > 0.0
}

/// The bias (one value per output channel) and the activation of a convolution's output.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub activation: Activation,
}

impl Epilogue<'_> {
    /// The output as the convolution computed it: what training runs, differentiated apart.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        activation: Activation::Identity,
    };

    /// Channel `channel`'s output plane, biased and activated in place.
    #[inline(always)]
    pub fn apply(&self, channel: usize, plane: &mut [f32]) {
        let activation = self.activation;
        // No addition without a bias: adding zero would turn -0.0 into 0.0.
        match self.bias {
            Some(bias) => {
                let bias = bias[channel];
                plane
                    .iter_mut()
                    .for_each(|v| *v = activation.apply(*v + bias));
            }
            None if activation == Activation::Identity => {}
            None => plane.iter_mut().for_each(|v| *v = activation.apply(*v)),
        }
    }
}
