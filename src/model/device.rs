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

/// Keeps the C allocator from handing libtorch's large temporaries back to the kernel
/// after every forward pass.
///
/// A scoring pass allocates tensors of a few to a few tens of MB (`[S, N, F]` in the
/// memory controller, `[U·S, H, L, L]` in self-attention). glibc serves blocks above its
/// mmap threshold with fresh `mmap`s and trims the heap top eagerly, so each pass paid
/// page faults and kernel page-zeroing for every such tensor (about 12% of CPU scoring
/// time, measured with `perf`). Raising the mmap threshold to glibc's maximum (32 MiB) and
/// the trim threshold to 1 GiB keeps that memory in the process for reuse; peak memory is
/// unchanged, as the same tensors are live either way. Environment variables
/// (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`) set by the user win. No-op off
/// glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: mallopt only changes allocator parameters; called before any thread
            // starts.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) };
        }
        if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) };
        }
    }
}
