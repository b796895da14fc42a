//! Shared-memory bulk path to a server on the same machine: the shim creates an owner-only POSIX
//! shared-memory segment, the server maps it (only for a local connection), and large copies then
//! move through it with plain memcpy instead of through the encrypted connection. The name is
//! unlinked as soon as the server has mapped it, so nothing is left behind.

use crate::rt;
use rgpu_protocol::error::CuResult;
use rgpu_protocol::messages::*;
use std::sync::{Mutex, MutexGuard};

/// Size of the segment (tmpfs pages are only allocated when touched).
pub const SHM_SIZE: usize = 1 << 30;
/// Copies at least this large use the segment.
pub const SHM_MIN: usize = 256 << 10;

/// A mapped segment.
pub struct Segment {
    pub base: *mut u8,
    pub size: usize,
}

// SAFETY: the mapping is process-wide memory; access is serialised by the mutex below.
unsafe impl Send for Segment {}

enum State {
    Untried,
    Off,
    On(u32, Segment),
}

static SHM: Mutex<State> = Mutex::new(State::Untried);

fn enabled() -> bool {
    !std::env::var("RGPU_SHM").is_ok_and(|v| v == "0")
}

/// Creates and attaches the segment; `None` when the server is remote or refuses.
fn create() -> Option<Segment> {
    if !enabled() || !rt::server_is_local() {
        return None;
    }
    let mut rnd = [0u8; 16];
    // SAFETY: getrandom writes at most 16 bytes into our buffer.
    if unsafe { libc::getrandom(rnd.as_mut_ptr() as *mut libc::c_void, 16, 0) } != 16 {
        return None;
    }
    let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("/rgpu-{}-{hex}", crate::rt::pid());
    let cname = std::ffi::CString::new(name.clone()).ok()?;
    // SAFETY: plain POSIX calls on a NUL-terminated name; every failure is checked.
    unsafe {
        let fd = libc::shm_open(
            cname.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            0o600,
        );
        if fd < 0 {
            return None;
        }
        let ok = libc::ftruncate(fd, SHM_SIZE as libc::off_t) == 0;
        let p = if ok {
            libc::mmap(
                std::ptr::null_mut(),
                SHM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        } else {
            libc::MAP_FAILED
        };
        libc::close(fd);
        if p == libc::MAP_FAILED {
            libc::shm_unlink(cname.as_ptr());
            return None;
        }
        let attached = rt::call_in(
            0,
            Request::ShmAttach(ShmAttachReq {
                name,
                size: SHM_SIZE as u64,
            }),
        )
        .is_ok();
        libc::shm_unlink(cname.as_ptr());
        if !attached {
            libc::munmap(p, SHM_SIZE);
            return None;
        }
        Some(Segment {
            base: p as *mut u8,
            size: SHM_SIZE,
        })
    }
}

/// The segment of this process, locked for one copy; `None` when unavailable or busy (then the
/// copy goes through the connection).
pub fn lock() -> Option<ShmGuard> {
    let mut g = match SHM.try_lock() {
        Ok(g) => g,
        Err(_) => return None,
    };
    let pid = crate::rt::pid();
    match &*g {
        State::On(p, _) if *p == pid => {}
        State::Off => return None,
        _ => {
            // First use, or inherited across fork: the child attaches its own segment (the
            // parent's mapping stays as it is; it is never unmapped here).
            *g = match create() {
                Some(s) => State::On(pid, s),
                None => State::Off,
            };
            if let State::Off = &*g {
                return None;
            }
        }
    }
    Some(ShmGuard(g))
}

/// Exclusive use of the segment.
pub struct ShmGuard(MutexGuard<'static, State>);

impl ShmGuard {
    /// The segment.
    pub fn segment(&self) -> &Segment {
        match &*self.0 {
            State::On(_, s) => s,
            _ => unreachable!("lock() only returns an attached segment"),
        }
    }
}

/// Host → device through the segment, in chunks of the segment's size.
///
/// # Safety
/// `src` must be readable for `n` bytes.
pub unsafe fn htod(
    g: &ShmGuard,
    dst: u64,
    src: *const u8,
    n: usize,
    stream: u64,
    is_async: bool,
) -> CuResult<()> {
    let seg = g.segment();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(seg.size);
        // SAFETY: the caller's buffer has `n` readable bytes; the segment has `size`.
        unsafe { std::ptr::copy_nonoverlapping(src.add(done), seg.base, k) };
        rt::call(Request::MemcpyHtoDShm(MemcpyHtoDShmReq {
            dst: dst + done as u64,
            offset: 0,
            byte_count: k as u64,
            stream,
            is_async,
        }))?;
        done += k;
    }
    Ok(())
}

/// Device → host through the segment.
///
/// # Safety
/// `dst` must be writable for `n` bytes.
pub unsafe fn dtoh(g: &ShmGuard, dst: *mut u8, src: u64, n: usize, stream: u64) -> CuResult<()> {
    let seg = g.segment();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(seg.size);
        rt::call(Request::MemcpyDtoHShm(MemcpyDtoHShmReq {
            src: src + done as u64,
            offset: 0,
            byte_count: k as u64,
            stream,
        }))?;
        // SAFETY: the server wrote `k` bytes at the segment's start; the caller's buffer has room.
        unsafe { std::ptr::copy_nonoverlapping(seg.base, dst.add(done), k) };
        done += k;
    }
    Ok(())
}
