//! Which device runs the model: the first CUDA GPU when the build has CUDA and one is present,
//! otherwise the CPU.

use candle_core::Device;

use super::TrainError;

pub fn pick(cpu_only: bool) -> Result<Device, TrainError> {
    if cpu_only || !candle_core::utils::cuda_is_available() {
        return Ok(Device::Cpu);
    }
    // A CUDA build that finds no usable GPU (no driver, the link stub, no device) runs on the CPU
    // rather than failing: candle's cuda_if_available only asks whether the build has CUDA.
    match Device::new_cuda(0) {
        Ok(device) => Ok(device),
        Err(err) => {
            let err = err.to_string();
            let reason = err.lines().next().unwrap_or_default();
            tracing::warn!("no usable CUDA GPU ({reason}); running on the CPU");
            Ok(Device::Cpu)
        }
    }
}

/// A short name for summaries: "cpu" or "cuda:0".
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda:0".into(),
        Device::Metal(_) => "metal".into(),
    }
}
