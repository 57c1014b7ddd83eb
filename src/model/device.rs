//! `--device auto|cpu|cuda|cuda:N`: where the model runs; `--precision fp32|bf16`: the
//! float type it scores in.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use tch::{Device, Kind};

/// The user's device choice, as the `--device` flag and the `device` job key spell it:
/// `auto`, `cpu`, `cuda` (the first GPU) or `cuda:N` (GPU number N, as `nvidia-smi`
/// numbers them unless `CUDA_VISIBLE_DEVICES` renumbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// The first CUDA GPU when one is visible, CPU otherwise.
    #[default]
    Auto,
    Cpu,
    /// This CUDA GPU; an error when there is no such GPU.
    Cuda(usize),
}

impl DeviceChoice {
    /// Resolves the choice on this machine.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cuda(i) => {
                if !tch::Cuda::is_available() {
                    bail!(
                        "--device {self} was asked for, but libtorch sees no CUDA device here \
                         (tch::Cuda::is_available() is false); use --device cpu or --device auto"
                    )
                }
                let count = tch::Cuda::device_count() as usize;
                if i >= count {
                    bail!(
                        "--device {self} was asked for, but libtorch sees {count} CUDA \
                         device(s), cuda:0 to cuda:{}",
                        count - 1
                    )
                }
                Ok(Device::Cuda(i))
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a device: use auto, cpu, cuda or cuda:N");
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(bad),
        }
    }
}

/// `TryFrom<String>` through `FromStr` and `From<T> for String` through `Display`: what
/// serde's `try_from = "String", into = "String"` needs, so a job file spells a value as
/// the flag does.
macro_rules! spelled_as_text {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    };
}

spelled_as_text!(DeviceChoice);
spelled_as_text!(Precision);

/// The float type a scoring model computes in (`--precision`, job key `precision`).
///
/// `bf16` casts the weights and memories to bfloat16 after loading: half the weights'
/// memory traffic, and the tensor cores of a recent GPU. Its 8-bit mantissa moves a
/// probability by up to about 1e-2: at most 6.8e-3 over 49,155 candidates of a DUMN trained
/// for 4 epochs, 5.6e-3 over 959,360 of the benchmark's model (docs/benchmarks.md); the
/// tests and `ci/gpu-check.sh` allow [`BF16_TOLERANCE`]. Rankings of candidates whose
/// scores differ by less may swap. On a 2-core AVX2 CPU it scored at the speed of fp32 with
/// 2.5 times the peak memory, so it is meant for GPUs. Training always runs in fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Precision {
    /// 32-bit floats, as the model was trained.
    #[default]
    Fp32,
    /// bfloat16 weights and activations.
    Bf16,
}

/// The most a `bf16` score may differ from the `fp32` score of the same row (see
/// [`Precision`]).
pub const BF16_TOLERANCE: f32 = 2e-2;

impl Precision {
    /// The tensor kind of the weights.
    pub fn kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(format!("'{s}' is not a precision: use fp32 or bf16")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        for (text, choice) in [
            ("auto", DeviceChoice::Auto),
            ("CPU", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
        ] {
            let parsed: DeviceChoice = text.parse().unwrap();
            assert_eq!(parsed, choice);
            assert_eq!(parsed.to_string().parse::<DeviceChoice>().unwrap(), choice);
        }
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1"] {
            let err = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(err.contains(bad) && err.contains("cuda:N"), "{err}");
        }
        // The job file spells it the same way.
        #[derive(serde::Deserialize)]
        struct Job {
            device: DeviceChoice,
        }
        let job: Job = toml::from_str("device = \"cuda:1\"").unwrap();
        assert_eq!(job.device, DeviceChoice::Cuda(1));
        assert!(toml::from_str::<Job>("device = \"tpu\"").is_err());
    }

    #[test]
    fn precisions_parse_and_print_back() {
        for (text, p) in [
            ("fp32", Precision::Fp32),
            ("BF16", Precision::Bf16),
            ("bfloat16", Precision::Bf16),
        ] {
            let parsed: Precision = text.parse().unwrap();
            assert_eq!(parsed, p);
            assert_eq!(parsed.to_string().parse::<Precision>().unwrap(), p);
        }
        let err = "fp16".parse::<Precision>().unwrap_err();
        assert!(err.contains("fp16") && err.contains("bf16"), "{err}");
        #[derive(serde::Deserialize)]
        struct Job {
            precision: Precision,
        }
        let job: Job = toml::from_str("precision = \"bf16\"").unwrap();
        assert_eq!(job.precision, Precision::Bf16);
        assert!(toml::from_str::<Job>("precision = \"fp16\"").is_err());
    }
}
