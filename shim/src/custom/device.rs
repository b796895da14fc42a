//! Device queries answered from a per-process cache: everything static about a device (every
//! attribute, name, UUID, memory size) is fetched in one round trip the first time it is needed.
//! cudart asks for ~110 attributes at start-up; this makes that one call instead of 110.

use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::{Arc, LazyLock, Mutex};

type SummaryCache = Mutex<HashMap<(u32, i32), Arc<DeviceSummaryRep>>>;
static DEVICES: LazyLock<SummaryCache> = LazyLock::new(Default::default);

fn summary(dev: i32) -> CuResult<Arc<DeviceSummaryRep>> {
    let key = (crate::rt::pid(), dev);
    if let Some(s) = DEVICES.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(s.clone());
    }
    let Reply::DeviceSummary(r) = rt::call(Request::DeviceSummary(DeviceSummaryReq { dev }))?
    else {
        return Err(rt::mismatch("cuDeviceGetAttribute"));
    };
    let r = Arc::new(r);
    DEVICES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, r.clone());
    Ok(r)
}

pub unsafe fn cu_device_get_attribute(value: *mut i32, attrib: i32, dev: i32) -> CuResult<()> {
    if value.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let s = summary(dev)?;
    let v = usize::try_from(attrib)
        .ok()
        .and_then(|i| s.attributes.get(i).copied())
        .filter(|&v| v != i32::MIN)
        .ok_or(CuError::INVALID_VALUE)?;
    // SAFETY: checked non-null.
    unsafe { value.write(v) };
    Ok(())
}

pub unsafe fn cu_device_get_name(name: *mut c_char, len: i32, dev: i32) -> CuResult<()> {
    if name.is_null() || len <= 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let s = summary(dev)?;
    // SAFETY: the caller passes `len` writable bytes.
    unsafe { rt::str_out(name, len as i64, s.name.as_bytes()) };
    Ok(())
}

pub unsafe fn cu_device_get_uuid(uuid: *mut u8, dev: i32) -> CuResult<()> {
    if uuid.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let s = summary(dev)?;
    // SAFETY: a CUuuid holds 16 bytes.
    unsafe { rt::bytes_out(uuid as *mut std::ffi::c_void, 16, &s.uuid) }
}

pub unsafe fn cu_device_total_mem_v2(bytes: *mut usize, dev: i32) -> CuResult<()> {
    if bytes.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let s = summary(dev)?;
    // SAFETY: checked non-null.
    unsafe { bytes.write(s.total_mem as usize) };
    Ok(())
}
