//! The compute device, chosen at compile time by cargo features: `cuda`, then `wgpu`, then
//! `ndarray`, else Burn's `flex` CPU backend (the fastest CPU backend that builds offline).

use burn::prelude::*;

/// The device the binaries run on.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    return Device::cuda(0);
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    return Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    #[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu"))))]
    #[allow(deprecated)] // burn-ndarray stays available as a slow reference backend
    return Device::ndarray();
    #[cfg(not(any(feature = "cuda", feature = "wgpu", feature = "ndarray")))]
    return Device::flex();
}

/// The backend's name, for the line the binaries print at start.
pub fn backend_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else if cfg!(feature = "ndarray") {
        "ndarray (CPU)"
    } else {
        "flex (CPU)"
    }
}
