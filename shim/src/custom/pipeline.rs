//! Checks made before a call is pipelined (sent without waiting for its reply, see `async` in
//! protocol/api/driver.api): what the driver reports at once — an unknown stream or event handle,
//! flags it does not know — fails here at once too; what only the device can tell (a bad
//! address, work in another context) is reported by the thread's next call that waits, as CUDA
//! allows for asynchronous work.

use super::launch::check_stream;
use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::sync::{LazyLock, Mutex};

/// `CU_EVENT_RECORD_EXTERNAL` / `CU_EVENT_WAIT_EXTERNAL`: the only flags these calls take.
const EXTERNAL: u32 = 1;

type EventSet = Mutex<std::collections::HashSet<(u32, u64)>>;
static KNOWN_EVENTS: LazyLock<EventSet> = LazyLock::new(Default::default);

/// An unknown event handle fails at once: the first pipelined use of each event asks the server
/// about it (handles are never reused, so a destroyed event is reported later, by the server).
fn check_event(event: u64) -> CuResult<()> {
    if event == 0 {
        return Err(CuError::INVALID_HANDLE);
    }
    let key = (std::process::id(), event);
    if KNOWN_EVENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&key)
    {
        return Ok(());
    }
    match rt::call(Request::EventQuery(EventQueryReq { event })) {
        Ok(_) => {}
        Err(e) if e == CuError::NOT_READY => {}
        Err(e) => return Err(e),
    }
    KNOWN_EVENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key);
    Ok(())
}

/// Checks a request before it is pipelined.
pub fn precheck(req: &Request) -> CuResult<()> {
    match req {
        Request::MemcpyDtoDAsync(r) => check_stream(r.stream),
        Request::MemsetD8Async(r) => check_stream(r.stream),
        Request::MemsetD16Async(r) => check_stream(r.stream),
        Request::MemsetD32Async(r) => check_stream(r.stream),
        Request::MemsetD2D8Async(r) => check_stream(r.stream),
        Request::MemsetD2D16Async(r) => check_stream(r.stream),
        Request::MemsetD2D32Async(r) => check_stream(r.stream),
        Request::EventRecord(r) => {
            check_event(r.event)?;
            check_stream(r.stream)
        }
        Request::EventRecordWithFlags(r) => {
            if r.flags & !EXTERNAL != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            check_event(r.event)?;
            check_stream(r.stream)
        }
        Request::StreamWaitEvent(r) => {
            if r.flags & !EXTERNAL != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            check_stream(r.stream)?;
            check_event(r.event)
        }
        _ => Ok(()),
    }
}
