//! Framing: how messages travel on a QUIC stream. Sans-IO: functions over byte slices only.
//!
//! Every frame is `len: u32 LE` followed by `len` payload bytes. The payload starts with a kind
//! byte. Call and reply frames have a fixed little-endian header followed by the message body
//! (postcard). Handshake frames carry the magic `RGPU` and the protocol version *before* any
//! postcard data, so peers of different versions can always recognise and refuse each other.

use crate::error::DecodeError;
use serde::{Deserialize, Serialize};

/// Version of the framing, handshake and message set. Bump on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 4;
/// First bytes of every handshake frame.
pub const MAGIC: [u8; 4] = *b"RGPU";
/// Default upper bound for one frame (a 1 GiB copy plus headers).
pub const DEFAULT_MAX_FRAME: u32 = (1 << 30) + 4096;

/// Frame kinds.
pub mod kind {
    /// Client → server: a call.
    pub const CALL: u8 = 1;
    /// Server → client: the reply to a call.
    pub const REPLY: u8 = 2;
    /// Server → client: an unsolicited notice (e.g. shutdown).
    pub const NOTICE: u8 = 3;
    /// Server → client: kernel output: one byte stream id (1 stdout, 2 stderr), then the bytes.
    pub const OUTPUT: u8 = 4;
    /// Client → server on a local socket: are you alive? (answered with PONG by the reader of
    /// the session, even while calls run; QUIC has its own keep-alives).
    pub const PING: u8 = 5;
    /// Server → client: answer to PING.
    pub const PONG: u8 = 6;
    /// Client → server: first frame of a connection.
    pub const HELLO: u8 = 0x10;
    /// Server → client: answer to HELLO.
    pub const WELCOME: u8 = 0x11;
}

/// Call flags.
pub mod flags {
    /// The call came through a `_ptds`/`_ptsz` entry point: stream 0 means the per-thread stream.
    pub const PER_THREAD_STREAM: u8 = 1;
    /// Pipelined call: the server sends no reply; an error is reported by the calling thread's
    /// next call that waits for a reply.
    pub const NO_REPLY: u8 = 2;
    /// The body is LZ4-compressed ([`compress`]); on replies, the header's flags byte.
    pub const COMPRESSED: u8 = 4;
}

/// Bodies at least this large are compressed when compression is on.
pub const COMPRESS_MIN: usize = 64 << 10;

/// LZ4-compresses `body` (with its length prepended) when compression pays; `None` otherwise.
pub fn compress(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() < COMPRESS_MIN {
        return None;
    }
    let c = lz4_flex::compress_prepend_size(body);
    (c.len() < body.len() - body.len() / 8).then_some(c)
}

/// A received frame's body as sent: decompressed when `flags` say it is compressed (at most
/// `max` bytes), else as it is.
pub fn body(flags: u8, body: &[u8], max: u32) -> Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
    if flags & flags::COMPRESSED != 0 {
        decompress(body, max).map(std::borrow::Cow::Owned)
    } else {
        Ok(std::borrow::Cow::Borrowed(body))
    }
}

/// Undoes [`compress`], refusing a declared size above `max` before allocating anything.
pub fn decompress(body: &[u8], max: u32) -> Result<Vec<u8>, DecodeError> {
    if body.len() < 4 {
        return Err(DecodeError::ShortFrame(body.len()));
    }
    let n = check_len(
        u32::from_le_bytes(body[..4].try_into().expect("4 bytes")),
        max,
    )?;
    lz4_flex::block::decompress(&body[4..], n).map_err(|_| DecodeError::Corrupt("compressed body"))
}

/// Fixed header of a call frame (after the length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallHeader {
    /// Call flags (`flags::*`).
    pub flags: u8,
    /// Message opcode.
    pub opcode: u32,
    /// Request id, echoed in the reply.
    pub id: u64,
    /// Client thread that made the call.
    pub thread: u64,
    /// The calling thread's current context handle (0: none).
    pub ctx: u64,
}

/// Size of the call header.
pub const CALL_HEADER_LEN: usize = 32;
/// Size of the reply header.
pub const REPLY_HEADER_LEN: usize = 24;

impl CallHeader {
    /// Encodes a whole call frame (length prefix included).
    pub fn frame(&self, body_len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + CALL_HEADER_LEN + body_len);
        v.extend_from_slice(&((CALL_HEADER_LEN + body_len) as u32).to_le_bytes());
        v.push(kind::CALL);
        v.push(self.flags);
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&self.opcode.to_le_bytes());
        v.extend_from_slice(&self.id.to_le_bytes());
        v.extend_from_slice(&self.thread.to_le_bytes());
        v.extend_from_slice(&self.ctx.to_le_bytes());
        v
    }

    /// Parses a call payload into header and body.
    pub fn parse(p: &[u8]) -> Result<(CallHeader, &[u8]), DecodeError> {
        if p.len() < CALL_HEADER_LEN {
            return Err(DecodeError::ShortFrame(p.len()));
        }
        if p[0] != kind::CALL {
            return Err(DecodeError::UnknownKind(p[0]));
        }
        let u32at = |o: usize| u32::from_le_bytes(p[o..o + 4].try_into().unwrap());
        let u64at = |o: usize| u64::from_le_bytes(p[o..o + 8].try_into().unwrap());
        Ok((
            CallHeader {
                flags: p[1],
                opcode: u32at(4),
                id: u64at(8),
                thread: u64at(16),
                ctx: u64at(24),
            },
            &p[CALL_HEADER_LEN..],
        ))
    }
}

/// Fixed header of a reply frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyHeader {
    /// Reply flags (`flags::COMPRESSED`).
    pub flags: u8,
    /// `CUresult` of the call; when non-zero the body is empty.
    pub status: u32,
    /// Request id of the call.
    pub id: u64,
    /// Opcode of the reply body.
    pub opcode: u32,
}

impl ReplyHeader {
    /// Encodes the reply frame prefix (length prefix included).
    pub fn frame(&self, body_len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + REPLY_HEADER_LEN + body_len);
        v.extend_from_slice(&((REPLY_HEADER_LEN + body_len) as u32).to_le_bytes());
        v.push(kind::REPLY);
        v.push(self.flags);
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&self.status.to_le_bytes());
        v.extend_from_slice(&self.id.to_le_bytes());
        v.extend_from_slice(&self.opcode.to_le_bytes());
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    /// Parses a reply payload into header and body.
    pub fn parse(p: &[u8]) -> Result<(ReplyHeader, &[u8]), DecodeError> {
        if p.len() < REPLY_HEADER_LEN {
            return Err(DecodeError::ShortFrame(p.len()));
        }
        if p[0] != kind::REPLY {
            return Err(DecodeError::UnknownKind(p[0]));
        }
        let u32at = |o: usize| u32::from_le_bytes(p[o..o + 4].try_into().unwrap());
        Ok((
            ReplyHeader {
                flags: p[1],
                status: u32at(4),
                id: u64::from_le_bytes(p[8..16].try_into().unwrap()),
                opcode: u32at(16),
            },
            &p[REPLY_HEADER_LEN..],
        ))
    }
}

/// Encodes an OUTPUT frame (length prefix included).
pub fn output_frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + data.len());
    v.extend_from_slice(&((2 + data.len()) as u32).to_le_bytes());
    v.push(kind::OUTPUT);
    v.push(stream);
    v.extend_from_slice(data);
    v
}

/// Checks a frame's length prefix against the limit.
pub fn check_len(len: u32, max: u32) -> Result<usize, DecodeError> {
    if len > max {
        return Err(DecodeError::TooLarge {
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(len as usize)
}

/// Decodes a postcard body that must be consumed entirely.
pub fn body_from<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    let (v, rest) = postcard::take_from_bytes(body)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(v)
}

/// First message of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Hello {
    /// `messages::SPEC_HASH` of the client's build.
    pub spec_hash: u64,
    /// Access token from the connection file.
    pub token: String,
    /// Client process id (for logs and `rgpu devices`-style listings).
    pub pid: u32,
    /// Client host name.
    pub host: String,
    /// Client software version.
    pub client_version: String,
    /// `RGPU_VISIBLE_DEVICES` of the client: which of the server's devices the session sees
    /// (`CUDA_VISIBLE_DEVICES` syntax: indices or UUIDs, comma-separated; unset: all).
    pub visible_devices: Option<String>,
    /// Whether the client wants large reply bodies compressed (`RGPU_COMPRESS=lz4`).
    pub compress: bool,
    /// Set when this connection takes up an existing session after its connection was lost.
    pub resume: Option<Resume>,
    /// The pool allocation the session belongs to (`rgpu run --registry`); a pool server accepts
    /// sessions only for allocations that exist.
    pub allocation: Option<String>,
    /// A client that uses several servers at once numbers them 1, 2, …; the server then puts
    /// this session's handles and CPU-device addresses in that number's space, so that no two
    /// servers hand the client the same value (0: a client of one server).
    pub namespace: u8,
}

/// A reconnecting client's claim on its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Resume {
    /// The session, as its `Welcome` named it.
    pub session: u64,
    /// The secret its `Welcome` gave.
    pub secret: String,
    /// Ids of the calls the client still waits for.
    pub waiting: Vec<u64>,
    /// Not a resume: an extra connection of the live session for the chunks of large copies
    /// (a bulk lane), whose calls are answered on it.
    pub lane: bool,
}

/// What the server tells a client that took up its session again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Resumed {
    /// How many call frames the session has read so far: the client sends again, in order,
    /// every frame after these.
    pub frames_read: u64,
    /// Which of the waited-for calls the server will answer (from its reply cache, or when
    /// they finish); the others among those it read lost their reply.
    pub answering: Vec<u64>,
}

/// Start of a refusal's text when the devices asked for are held exclusively by other
/// sessions (the shim reports `CUDA_ERROR_DEVICE_UNAVAILABLE`).
pub const REFUSED_BUSY: &str = "device unavailable: ";

/// Start of a refusal's text when a session cannot be taken up again.
pub const REFUSED_RESUME: &str = "cannot resume: ";

/// One device of a session as the server listed it at the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DeviceLoad {
    /// The device's index in the server's list.
    pub server_index: u32,
    /// Other sessions using it at the handshake.
    pub sessions: u32,
    /// Whether the device serves one session at a time.
    pub exclusive: bool,
}

/// The server's acceptance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Welcome {
    /// Session id on the server.
    pub session: u64,
    /// Server software version.
    pub server_version: String,
    /// Driver version the server reports (`cuDriverGetVersion`).
    pub driver_version: i32,
    /// The session's devices, in the order it sees them.
    pub devices: Vec<DeviceLoad>,
    /// `sha256:<hex>` of the server's certificate: a client on the local socket (no TLS) checks
    /// it against its pin.
    pub fingerprint: String,
    /// Secret with which the client may take the session up again after losing the connection
    /// (empty: the session ends with its connection).
    pub resume_secret: String,
    /// How long the server keeps a session whose connection was lost.
    pub resume_window_ms: u64,
    /// Set when the connection took up an existing session.
    pub resumed: Option<Resumed>,
}

/// Handshake outcome sent by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HandshakeReply {
    /// Accepted.
    Welcome(Welcome),
    /// Refused, with a reason meant for the user.
    Refused(String),
}

/// Encodes a handshake frame: kind, magic, version, then the postcard body.
pub fn handshake_frame<T: Serialize>(k: u8, version: u32, body: &T) -> Vec<u8> {
    let mut payload = vec![k];
    payload.extend_from_slice(&MAGIC);
    payload.extend_from_slice(&version.to_le_bytes());
    let payload = postcard::to_extend(body, payload).expect("serialising to a Vec cannot fail");
    let mut v = (payload.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(&payload);
    v
}

/// Parses the kind, magic and version of a handshake payload; returns (version, body).
pub fn parse_handshake(k: u8, p: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    if p.len() < 9 {
        return Err(DecodeError::ShortFrame(p.len()));
    }
    if p[1..5] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if p[0] != k {
        return Err(DecodeError::UnknownKind(p[0]));
    }
    Ok((u32::from_le_bytes(p[5..9].try_into().unwrap()), &p[9..]))
}
