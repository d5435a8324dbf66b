//! The compute device, chosen at compile time by cargo features: `cuda`, then `wgpu`, then
//! `ndarray`, else Burn's `flex` CPU backend (the fastest CPU backend that builds offline).

use burn::prelude::*;
use burn::tensor::DeviceType;

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
pub fn devices(count: usize) -> anyhow::Result<Vec<Device>> {
    if count <= 1 {
        return Ok(vec![device()]);
    }
    let found: Vec<Device> = Device::enumerate(device_type()).into_iter().collect();
    anyhow::ensure!(
        found.len() >= count,
        "devices = {count}, but the {} backend has {} device{} here; set devices to at most {} (or build with --features cuda or wgpu on a machine with more GPUs)",
        backend_name(),
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        found.len().max(1)
    );
    Ok(found.into_iter().take(count).collect())
}

/// The devices a run trains on, resolved once: the model's, and those of the copies that take the
/// other shares of each batch (both as autodiff devices).
#[derive(Debug, Clone)]
pub struct Placement {
    pub main: Device,
    pub replicas: Vec<Device>,
}

impl Placement {
    /// `devices` as [`devices`] returns them (never empty): the first holds the model.
    pub fn new(devices: &[Device]) -> Self {
        let (main, others) = devices
            .split_first()
            .expect("devices() returns at least one device");
        Self {
            main: main.clone().autodiff(),
            replicas: others.iter().cloned().map(Device::autodiff).collect(),
        }
    }
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
