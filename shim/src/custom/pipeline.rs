//! Checks made before a call is pipelined (sent without waiting for its reply, see `async` in
//! protocol/api/driver.api): what the driver reports at once — an unknown stream or event handle,
//! flags it does not know — fails here at once too; what only the device can tell (a bad
//! address, work in another context) is reported by the thread's next call that waits, as CUDA
//! allows for asynchronous work.

use crate::rt;
use rgpu_protocol::error::{CuError, CuResult};
use rgpu_protocol::messages::*;
use std::sync::{LazyLock, Mutex};

/// `CU_EVENT_RECORD_EXTERNAL` / `CU_EVENT_WAIT_EXTERNAL`: the only flags these calls take.
const EXTERNAL: u32 = 1;

/// Handles of this process (`(pid, handle)`, so a forked child asks again) that the server has
/// confirmed once; handles are never reused, so a destroyed one is reported later, by the server.
type Known = Mutex<std::collections::HashSet<(u32, u64)>>;
static KNOWN_STREAMS: LazyLock<Known> = LazyLock::new(Default::default);
static KNOWN_EVENTS: LazyLock<Known> = LazyLock::new(Default::default);

/// Ok when `handle` is in `known`, else when `probe` (a call about it) succeeds, which records it.
fn check_known(known: &Known, handle: u64, probe: impl FnOnce() -> CuResult<()>) -> CuResult<()> {
    let key = (crate::rt::pid(), handle);
    if known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&key)
    {
        return Ok(());
    }
    probe()?;
    known.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
    Ok(())
}

/// An unknown stream handle fails at once, as with the driver: the first pipelined use of each
/// stream asks the server about it (later ones are sent without asking).
pub(crate) fn check_stream(stream: u64) -> CuResult<()> {
    if stream <= 2 {
        return Ok(());
    }
    check_known(&KNOWN_STREAMS, stream, || {
        rt::call(Request::StreamGetFlags(StreamGetFlagsReq { stream })).map(|_| ())
    })
}

/// An unknown event handle fails at once: the first pipelined use of each event asks the server.
fn check_event(event: u64) -> CuResult<()> {
    if event == 0 {
        return Err(CuError::INVALID_HANDLE);
    }
    check_known(&KNOWN_EVENTS, event, || {
        match rt::call(Request::EventQuery(EventQueryReq { event })) {
            Ok(_) => Ok(()),
            Err(e) if e == CuError::NOT_READY => Ok(()),
            Err(e) => Err(e),
        }
    })
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
