//! Entry points for the fuzz targets (`protocol/fuzz`) and for the test that replays their
//! corpus on every build (`protocol/tests/fuzz_corpus.rs`). Each takes arbitrary bytes from an
//! untrusted peer and must return, never panic, whatever they are.

use crate::connfile::ConnectionFile;
use crate::image;
use crate::messages::{Reply, Request};
use crate::wire::{self, CallHeader, HandshakeReply, Hello, ReplyHeader};

/// A call frame as the server receives it (after the length prefix): header, then the body
/// decoded as the request its opcode names.
pub fn call_frame(data: &[u8]) {
    if let Ok((hdr, body)) = CallHeader::parse(data) {
        if let Ok(b) = wire::body(hdr.flags, body, 16 << 20) {
            let _ = Request::decode(hdr.opcode, &b);
        }
    }
    // Also every opcode against the same body, to reach each message's decoder.
    if let Some((&op, body)) = data.split_first() {
        let _ = Request::decode(op as u32, body);
    }
}

/// A reply frame as the client receives it.
pub fn reply_frame(data: &[u8]) {
    if let Ok((hdr, body)) = ReplyHeader::parse(data) {
        if let Ok(b) = wire::body(hdr.flags, body, 16 << 20) {
            let _ = Reply::decode(hdr.opcode, &b);
        }
    }
    if let Some((&op, body)) = data.split_first() {
        let _ = Reply::decode(op as u32, body);
    }
}

/// Both handshake messages.
pub fn handshake(data: &[u8]) {
    if let Ok((_, body)) = wire::parse_handshake(wire::kind::HELLO, data) {
        let _ = wire::body_from::<Hello>(body);
    }
    if let Ok((_, body)) = wire::parse_handshake(wire::kind::WELCOME, data) {
        let _ = wire::body_from::<HandshakeReply>(body);
    }
}

/// A connection file's text.
pub fn connection_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = ConnectionFile::parse(text) {
            let _ = c.validate();
        }
    }
}

/// A module image (PTX, fatbin, fatbin wrapper contents, ELF) as the shim sizes it and the
/// server unpacks it.
pub fn module_image(data: &[u8]) {
    let _ = image::kind(data);
    if !data.is_empty() {
        // SAFETY: `image_size` reads at most `max` bytes from `p`, here the slice's length.
        let _ = unsafe { image::image_size(data.as_ptr(), data.len()) };
    }
    let _ = image::fatbin_entries(data);
    let _ = image::extract_ptx(data);
}
