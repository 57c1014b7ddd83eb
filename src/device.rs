//! `--device auto|cpu|cuda`: where the model runs.

use anyhow::{bail, Result};
use clap::ValueEnum;
use tch::Device;

/// The user's device choice, as the `--device` flag spells it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when a GPU is visible, CPU otherwise.
    #[default]
    Auto,
    Cpu,
    /// The first CUDA GPU; an error when there is none.
    Cuda,
}

impl DeviceChoice {
    /// Resolves the choice on this machine.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cuda => {
                if tch::Cuda::is_available() {
                    Ok(Device::Cuda(0))
                } else {
                    bail!(
                        "--device cuda was asked for, but libtorch sees no CUDA device here \
                         (tch::Cuda::is_available() is false); use --device cpu or --device auto"
                    )
                }
            }
        }
    }
}

/// A short human name for a device.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}
