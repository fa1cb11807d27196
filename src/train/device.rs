//! Which device runs the model: the first CUDA GPU when the build has CUDA and one is present,
//! otherwise the CPU.

use candle_core::Device;

use super::TrainError;

pub fn pick(cpu_only: bool) -> Result<Device, TrainError> {
    if cpu_only {
        return Ok(Device::Cpu);
    }
    Ok(Device::cuda_if_available(0)?)
}

/// A short name for summaries: "cpu" or "cuda:0".
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda:0".into(),
        Device::Metal(_) => "metal".into(),
    }
}
