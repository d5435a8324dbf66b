//! The compute device, chosen at compile time by cargo features: `cuda`, then `wgpu`, then
//! `ndarray`, else Burn's `flex` CPU backend (the fastest CPU backend that builds offline).

use burn::prelude::*;
use burn::tensor::DeviceType;

use crate::StoreError;

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

/// The backend's kind of device, for listing them all.
fn device_type() -> DeviceType {
    #[cfg(feature = "cuda")]
    return DeviceType::Cuda;
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    return DeviceType::Wgpu;
    #[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu"))))]
    return DeviceType::NdArray;
    #[cfg(not(any(feature = "cuda", feature = "wgpu", feature = "ndarray")))]
    return DeviceType::Flex;
}

/// `count` devices of the backend to train on together: [`device`] alone for one, else the
/// first `count` the backend lists.
pub fn devices(count: usize) -> Result<Vec<Device>, StoreError> {
    if count <= 1 {
        return Ok(vec![device()]);
    }
    let found: Vec<Device> = Device::enumerate(device_type()).into_iter().collect();
    if found.len() < count {
        return Err(StoreError::Devices {
            asked: count,
            backend: backend_name(),
            found: found.len(),
        });
    }
    Ok(found.into_iter().take(count).collect())
}

/// The device as its driver names it (`NVIDIA H100 PCIe`, `llvmpipe (LLVM 15.0.6, 256 bits)`), or
/// the CPU and its threads.
pub fn describe(device: &Device) -> String {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    if let Some(identity) = device.identity() {
        return identity.name;
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    let _ = device;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("CPU ({threads} threads)")
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
