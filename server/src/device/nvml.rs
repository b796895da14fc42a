//! What NVIDIA's management library says about a GPU now: free memory (all of its users count)
//! and utilisation. `libnvidia-ml.so.1` is loaded at run time, once; without it (no NVIDIA
//! driver, or a CPU-only machine) every answer is "unknown".

use nvml_wrapper::Nvml;
use std::sync::OnceLock;

fn nvml() -> Option<&'static Nvml> {
    static NVML: OnceLock<Option<Nvml>> = OnceLock::new();
    NVML.get_or_init(|| {
        match Nvml::builder()
            .lib_path(std::ffi::OsStr::new("libnvidia-ml.so.1"))
            .init()
        {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::debug!("NVML is not available ({e}); GPU free memory and load unknown");
                None
            }
        }
    })
    .as_ref()
}

/// (free bytes, utilisation in percent) of the GPU with UUID `uuid` (`GPU-…`), where NVML knows.
pub fn usage(uuid: &str) -> (Option<u64>, Option<u32>) {
    let Some(dev) = nvml().and_then(|n| n.device_by_uuid(uuid).ok()) else {
        return (None, None);
    };
    (
        dev.memory_info().ok().map(|m| m.free),
        dev.utilization_rates().ok().map(|u| u.gpu),
    )
}
