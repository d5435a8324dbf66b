//! The devices a run trains on, resolved once: the model's, and those of the copies that take the
//! other shares of each batch.

use burn::prelude::*;

#[derive(Debug, Clone)]
pub struct Placement {
    /// The autodiff devices, the model's first.
    pub devices: Vec<Device>,
}

impl Placement {
    /// `devices` as `store::device::devices` returns them (never empty), as autodiff devices.
    pub fn new(devices: &[Device]) -> Self {
        assert!(!devices.is_empty(), "a run trains on at least one device");
        Self {
            devices: devices.iter().cloned().map(Device::autodiff).collect(),
        }
    }

    /// The device that holds the model.
    pub fn main(&self) -> &Device {
        &self.devices[0]
    }
}
