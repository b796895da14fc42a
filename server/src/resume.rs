//! Sessions over QUIC that outlive their connection. Frames between a client's QUIC stream and
//! its session pass through [`Pump`], which counts the call frames read, keeps the replies not
//! yet known to have arrived, and tracks the calls still running. When the connection is lost
//! (without a clean close), the session waits up to the resume window for the client to come
//! back with its secret; the new connection then carries on where the old one stopped: the
//! client sends again every frame the session did not read, the server sends again the replies
//! the client still waits for. Nothing runs twice; a reply that cannot be sent again is
//! reported to the client as lost.

use rgpu_protocol::transport::{self, FrameError};
use rgpu_protocol::wire::{self, kind, CallHeader, ReplyHeader, Resumed};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// Replies kept for a client that may come back (bytes); older ones are dropped first.
const REPLY_CACHE_BYTES: usize = 64 << 20;

/// Call frames read but not yet taken by the session (KiB): past this the pump stops reading,
/// and QUIC's flow control holds the client back.
const INBOUND_KIB: u32 = 64 << 10;

/// A call frame on its way to the session, holding its share of the inbound budget.
pub(crate) type Inbound = (Vec<u8>, tokio::sync::OwnedSemaphorePermit);

/// A new connection for a waiting session.
pub(crate) struct Reattach {
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    /// The calls whose replies the client still waits for.
    pub waiting: Vec<u64>,
    /// A bulk lane beside the live connection, not a resume.
    pub lane: bool,
}

/// Where a session takes new connections: resumes, and bulk lanes.
#[derive(Clone)]
pub(crate) struct Doors {
    pub resume: UnboundedSender<Reattach>,
    pub lanes: UnboundedSender<Reattach>,
}

/// The sessions that may be taken up again (or given bulk lanes): id → (secret, doors).
#[derive(Default)]
pub(crate) struct Registry(Mutex<HashMap<u64, (String, Doors)>>);

impl Registry {
    /// Hands `r` to session `sid` if `secret` is its secret; gives `r` back otherwise.
    pub fn reattach(&self, sid: u64, secret: &str, r: Reattach) -> Result<(), Box<Reattach>> {
        let tx = {
            let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match g.get(&sid) {
                Some((s, doors))
                    if crate::server::constant_time_eq(s.as_bytes(), secret.as_bytes()) =>
                {
                    if r.lane {
                        doors.lanes.clone()
                    } else {
                        doors.resume.clone()
                    }
                }
                _ => return Err(Box::new(r)),
            }
        };
        tx.send(r).map_err(|e| Box::new(e.0))
    }
}

/// Keeps a session in the registry for as long as it lives.
pub(crate) struct Registered<'a>(&'a Registry, u64);

impl<'a> Registered<'a> {
    pub fn new(reg: &'a Registry, sid: u64, secret: String, doors: Doors) -> Self {
        reg.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid, (secret, doors));
        Registered(reg, sid)
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0
             .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// How a connection of a session ended.
pub(crate) enum End {
    /// The client closed the connection (or its process exited).
    ClientClosed,
    /// The session ended (its frames stopped).
    SessionEnded,
    /// The connection was lost; the client may come back.
    Lost(String),
    /// The client broke the protocol.
    Malformed(String),
    /// A new connection took the session over.
    Reattached(Reattach),
}

/// The frame traffic of one session, across its connections.
pub(crate) struct Pump {
    /// Call frames (payloads) to the session.
    pub to_session: UnboundedSender<Inbound>,
    budget: Arc<tokio::sync::Semaphore>,
    /// Whole frames (length prefix included) from the session.
    pub from_session: UnboundedReceiver<Vec<u8>>,
    pub max_frame: u32,
    frames_read: u64,
    /// Calls read whose reply has not come from the session yet (shared by the reading and
    /// the writing half of [`Pump::run`]).
    running: Mutex<HashSet<u64>>,
    /// Replies sent (or being sent), newest last.
    cache: VecDeque<(u64, Arc<Vec<u8>>)>,
    cache_bytes: usize,
    /// Frames from the session not yet written whole to a connection, oldest first.
    unsent: VecDeque<Arc<Vec<u8>>>,
    /// Calls that came on a bulk lane: their replies go back on it.
    routes: Routes,
}

/// Call id → the bulk lane its reply goes to.
pub(crate) type Routes = Arc<Mutex<HashMap<u64, UnboundedSender<Arc<Vec<u8>>>>>>;

/// What a bulk lane needs from its session. Holding it does not keep the session alive.
#[derive(Clone)]
pub(crate) struct LaneCtx {
    to_session: tokio::sync::mpsc::WeakUnboundedSender<Inbound>,
    budget: Arc<tokio::sync::Semaphore>,
    routes: Routes,
    max_frame: u32,
}

/// Serves the bulk lanes a session's client opens, until the session ends.
/// `welcome`: the WELCOME frame a new lane gets.
pub(crate) async fn accept_lanes(
    mut doors: UnboundedReceiver<Reattach>,
    ctx: LaneCtx,
    sid: u64,
    welcome: Arc<Vec<u8>>,
) {
    while let Some(r) = doors.recv().await {
        tracing::debug!("session {sid}: bulk lane opened");
        tokio::spawn(serve_lane(r, ctx.clone(), welcome.clone()));
    }
}

/// Moves one bulk lane's calls to the session and their replies back.
async fn serve_lane(r: Reattach, ctx: LaneCtx, welcome: Arc<Vec<u8>>) {
    let Reattach {
        conn,
        mut send,
        mut recv,
        ..
    } = r;
    if send.write_all(&welcome).await.is_err() {
        return;
    }
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel::<Arc<Vec<u8>>>();
    let reader = async {
        while let Ok(p) = transport::read_frame(&mut recv, ctx.max_frame).await {
            let Ok((h, _)) = CallHeader::parse(&p) else {
                return;
            };
            if h.flags & wire::flags::NO_REPLY != 0 {
                return; // lanes carry calls that are waited for, nothing else
            }
            ctx.routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(h.id, tx.clone());
            let kib = ((p.len() >> 10) as u32 + 1).min(INBOUND_KIB);
            let Ok(permit) = ctx.budget.clone().acquire_many_owned(kib).await else {
                return;
            };
            let Some(to_session) = ctx.to_session.upgrade() else {
                return;
            };
            if to_session.send((p, permit)).is_err() {
                return;
            }
        }
    };
    let writer = async {
        while let Some(f) = replies.recv().await {
            if send.write_all(&f).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = reader => {},
        _ = writer => {},
    }
    conn.close(0u32.into(), b"lane closed");
}

impl Pump {
    pub fn new(
        to_session: UnboundedSender<Inbound>,
        from_session: UnboundedReceiver<Vec<u8>>,
        max_frame: u32,
    ) -> Self {
        Pump {
            to_session,
            budget: Arc::new(tokio::sync::Semaphore::new(INBOUND_KIB as usize)),
            from_session,
            max_frame,
            frames_read: 0,
            running: Mutex::new(HashSet::new()),
            cache: VecDeque::new(),
            cache_bytes: 0,
            unsent: VecDeque::new(),
            routes: Routes::default(),
        }
    }

    /// What the session's bulk lanes need.
    pub fn lane_ctx(&self) -> LaneCtx {
        LaneCtx {
            to_session: self.to_session.downgrade(),
            budget: self.budget.clone(),
            routes: self.routes.clone(),
            max_frame: self.max_frame,
        }
    }

    /// Moves frames both ways over one connection until it ends.
    pub async fn run(
        &mut self,
        send: &mut quinn::SendStream,
        recv: &mut quinn::RecvStream,
        reattach: &mut UnboundedReceiver<Reattach>,
    ) -> End {
        let Pump {
            to_session,
            budget,
            from_session,
            max_frame,
            frames_read,
            running,
            cache,
            cache_bytes,
            unsent,
            routes,
        } = self;
        let max = *max_frame;
        let running = &*running;
        let reader = async {
            loop {
                let p = match transport::read_frame(recv, max).await {
                    Ok(p) => p,
                    Err(FrameError::Closed) => return End::ClientClosed,
                    Err(FrameError::Decode(e)) => return End::Malformed(e.to_string()),
                    Err(e) => return End::Lost(e.to_string()),
                };
                *frames_read += 1;
                if let Ok((h, _)) = CallHeader::parse(&p) {
                    if h.flags & wire::flags::NO_REPLY == 0 {
                        running
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(h.id);
                    }
                }
                let kib = ((p.len() >> 10) as u32 + 1).min(INBOUND_KIB);
                let Ok(permit) = budget.clone().acquire_many_owned(kib).await else {
                    return End::SessionEnded;
                };
                if to_session.send((p, permit)).is_err() {
                    return End::SessionEnded;
                }
            }
        };
        let writer = async {
            loop {
                let f = match unsent.front() {
                    Some(f) => f.clone(),
                    None => match from_session.recv().await {
                        Some(f) => {
                            let f = Arc::new(f);
                            if f.get(4) == Some(&kind::REPLY) {
                                if let Ok((h, _)) = ReplyHeader::parse(&f[4..]) {
                                    let lane = routes
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .remove(&h.id);
                                    if let Some(lane) = lane {
                                        // Answered on the lane that brought the call.
                                        let _ = lane.send(f);
                                        continue;
                                    }
                                    running
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .remove(&h.id);
                                    *cache_bytes += f.len();
                                    cache.push_back((h.id, f.clone()));
                                    while *cache_bytes > REPLY_CACHE_BYTES {
                                        let Some((_, old)) = cache.pop_front() else {
                                            break;
                                        };
                                        *cache_bytes -= old.len();
                                    }
                                }
                            }
                            unsent.push_back(f.clone());
                            f
                        }
                        None => return End::SessionEnded,
                    },
                };
                if let Err(e) = send.write_all(&f).await {
                    return End::Lost(e.to_string());
                }
                unsent.pop_front();
            }
        };
        tokio::select! {
            e = reader => e,
            e = writer => e,
            r = reattach.recv() => match r {
                Some(r) => End::Reattached(r),
                None => End::SessionEnded,
            },
        }
    }

    /// Takes up a new connection: tells the client where the session stands and queues the
    /// replies it still waits for.
    pub fn resumed(&mut self, waiting: &[u64]) -> Resumed {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut answering = Vec::new();
        let queued: HashSet<u64> = self
            .unsent
            .iter()
            .filter(|f| f.get(4) == Some(&kind::REPLY))
            .filter_map(|f| ReplyHeader::parse(&f[4..]).ok().map(|(h, _)| h.id))
            .collect();
        let mut resend = Vec::new();
        for &id in waiting {
            if running.contains(&id) || queued.contains(&id) {
                answering.push(id);
            } else if let Some((_, f)) = self.cache.iter().rev().find(|(i, _)| *i == id) {
                answering.push(id);
                resend.push(f.clone());
            }
        }
        drop(running);
        // Cached replies go out first; frames that never left follow in their order.
        for f in resend.into_iter().rev() {
            self.unsent.push_front(f);
        }
        Resumed {
            frames_read: self.frames_read,
            answering,
        }
    }
}

/// What ends a session's wait for its client.
pub(crate) struct Waits {
    /// New connections claiming the session.
    pub reattach: UnboundedReceiver<Reattach>,
    /// Told when the client's process is known to have exited.
    pub gone: Arc<tokio::sync::Notify>,
    /// Set at server shutdown.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

/// Runs a session's traffic over its connections until the last one is gone: how it ended,
/// and that connection.
pub(crate) async fn drive(
    pump: &mut Pump,
    sid: u64,
    mut link: (quinn::Connection, quinn::SendStream, quinn::RecvStream),
    waits: &mut Waits,
    window: Duration,
    welcome: impl Fn(Resumed) -> Vec<u8>,
) -> (End, quinn::Connection) {
    let Waits {
        reattach,
        gone,
        closing,
    } = waits;
    loop {
        let end = pump.run(&mut link.1, &mut link.2, reattach).await;
        let next = match end {
            End::Reattached(r) => {
                tracing::info!("session {sid}: a new connection takes the session over");
                link.0
                    .close(6u32.into(), b"session taken over by a new connection");
                r
            }
            End::Lost(why) if !window.is_zero() && !*closing.borrow() => {
                tracing::warn!(
                    "session {sid}: connection lost ({why}); keeping the session {window:?} for the client to come back"
                );
                let waited = tokio::select! {
                    r = reattach.recv() => r,
                    _ = tokio::time::sleep(window) => None,
                    _ = gone.notified() => None,
                    _ = closing.changed() => None,
                };
                match waited {
                    Some(r) => {
                        tracing::info!("session {sid}: the client is back");
                        r
                    }
                    None => {
                        tracing::warn!("session {sid}: the client did not come back; ending it");
                        return (End::Lost(why), link.0);
                    }
                }
            }
            other => return (other, link.0),
        };
        let Reattach {
            conn,
            mut send,
            recv,
            waiting,
            ..
        } = next;
        let resumed = pump.resumed(&waiting);
        tracing::info!(
            "session {sid}: resumed after {} call frames; {} of {} awaited replies follow",
            resumed.frames_read,
            resumed.answering.len(),
            waiting.len()
        );
        if send.write_all(&welcome(resumed)).await.is_err() {
            // Lost again at once: wait for the next attempt like any loss.
            link = (conn, send, recv);
            continue;
        }
        link = (conn, send, recv);
    }
}
