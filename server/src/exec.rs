//! In-order execution queues for the CPU device: streams are worker threads running jobs in
//! submission order; fences say "everything submitted to this stream up to here has finished";
//! events record a fence and the time their job ran.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// A unit of work on a stream.
pub type Job = Box<dyn FnOnce() + Send>;

/// Progress counter of one stream.
#[derive(Default)]
pub struct Progress {
    done: Mutex<u64>,
    cv: Condvar,
}

/// A point in a stream's order.
#[derive(Clone)]
pub struct Fence {
    progress: Arc<Progress>,
    seq: u64,
}

impl Fence {
    /// A fence that is already passed.
    pub fn passed() -> Fence {
        Fence {
            progress: Arc::new(Progress::default()),
            seq: 0,
        }
    }

    /// Blocks until the stream has finished everything up to this fence.
    pub fn wait(&self) {
        let mut d = self.progress.done.lock().unwrap_or_else(|e| e.into_inner());
        while *d < self.seq {
            d = self.progress.cv.wait(d).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether the stream has passed this fence.
    pub fn is_done(&self) -> bool {
        *self.progress.done.lock().unwrap_or_else(|e| e.into_inner()) >= self.seq
    }
}

struct Queue {
    tx: Option<mpsc::Sender<(Vec<Fence>, Job)>>,
    submitted: u64,
}

/// A stream of the CPU device.
pub struct Stream {
    /// Handle the client sees.
    pub handle: u64,
    /// Owning context handle.
    pub ctx: u64,
    /// `CU_STREAM_*` flags.
    pub flags: u32,
    /// Priority.
    pub priority: i32,
    /// Unique id (`cuStreamGetId`).
    pub id: u64,
    queue: Mutex<Queue>,
    progress: Arc<Progress>,
}

static STREAM_IDS: AtomicU64 = AtomicU64::new(1);

impl Stream {
    /// Starts a stream and its worker thread.
    pub fn new(handle: u64, ctx: u64, flags: u32, priority: i32) -> Arc<Stream> {
        let (tx, rx) = mpsc::channel::<(Vec<Fence>, Job)>();
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        std::thread::Builder::new()
            .name("rgpu-stream".into())
            .spawn(move || {
                for (deps, job) in rx {
                    for d in &deps {
                        d.wait();
                    }
                    // A panicking job must not wedge the stream: count it as finished.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    let mut d = p.done.lock().unwrap_or_else(|e| e.into_inner());
                    *d += 1;
                    p.cv.notify_all();
                }
            })
            .expect("spawning a stream thread");
        Arc::new(Stream {
            handle,
            ctx,
            flags,
            priority,
            id: STREAM_IDS.fetch_add(1, Ordering::Relaxed),
            queue: Mutex::new(Queue {
                tx: Some(tx),
                submitted: 0,
            }),
            progress,
        })
    }

    /// Queues `job` to run after `deps` and after everything submitted before; returns its fence.
    pub fn submit(&self, deps: Vec<Fence>, job: Job) -> Fence {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = q.tx.as_ref() else {
            return Fence::passed();
        };
        if tx.send((deps, job)).is_err() {
            return Fence::passed();
        }
        q.submitted += 1;
        Fence {
            progress: self.progress.clone(),
            seq: q.submitted,
        }
    }

    /// Fence covering everything submitted so far.
    pub fn tail(&self) -> Fence {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        Fence {
            progress: self.progress.clone(),
            seq: q.submitted,
        }
    }

    /// Stops accepting work; queued work still runs, then the thread exits.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).tx = None;
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}

/// What an event recorded.
#[derive(Clone)]
pub struct Record {
    /// Completion point.
    pub fence: Fence,
    /// When the record job ran.
    pub time: Arc<Mutex<Option<Instant>>>,
}

/// An event.
pub struct Event {
    /// Handle the client sees.
    pub handle: u64,
    /// Owning context.
    pub ctx: u64,
    /// `CU_EVENT_*` flags.
    pub flags: u32,
    /// The last record, if any.
    pub record: Mutex<Option<Record>>,
}
