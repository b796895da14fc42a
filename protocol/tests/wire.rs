//! Round trips for every message and malformed-input behaviour of every decoder.

use rgpu_protocol::error::DecodeError;
use rgpu_protocol::messages::{Reply, Request, MESSAGES};
use rgpu_protocol::wire::{self, kind, CallHeader, HandshakeReply, Hello, ReplyHeader};

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn every_request_and_reply_round_trips() {
    let reqs = Request::samples();
    let reps = Reply::samples();
    assert_eq!(reqs.len(), MESSAGES.len());
    assert_eq!(reps.len(), MESSAGES.len());
    for r in reqs {
        let body = r.encode_body(Vec::new()).unwrap();
        assert_eq!(
            Request::decode(r.opcode(), &body).unwrap(),
            r,
            "{}",
            r.name()
        );
    }
    for r in reps {
        let body = r.encode_body(Vec::new()).unwrap();
        assert_eq!(Reply::decode(r.opcode(), &body).unwrap(), r, "{}", r.name());
    }
}

#[test]
fn messages_with_payloads_round_trip() {
    use rgpu_protocol::messages::*;
    let r = Request::MemcpyHtoD(MemcpyHtoDReq {
        dst: 0xdead_beef_0000,
        src: (0..=255u8).cycle().take(100_000).collect(),
        byte_count: 100_000,
    });
    let body = r.encode_body(Vec::new()).unwrap();
    assert!(body.len() < 100_020, "byte payloads travel unexpanded");
    assert_eq!(Request::decode(r.opcode(), &body).unwrap(), r);
    let r = Request::DeviceGetByPciBusId(DeviceGetByPciBusIdReq {
        pci_bus_id: "0000:c0:00.0".into(),
    });
    let body = r.encode_body(Vec::new()).unwrap();
    assert_eq!(Request::decode(r.opcode(), &body).unwrap(), r);
}

#[test]
fn opcodes_are_unique_and_stable() {
    let mut ids: Vec<u32> = MESSAGES.iter().map(|m| m.0).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), MESSAGES.len());
    // Append-only ids: these must never change meaning.
    let find = |n: &str| MESSAGES.iter().find(|m| m.1 == n).unwrap().0;
    assert_eq!(find("Init"), 1);
    assert_eq!(find("MemAlloc"), 60);
    assert_eq!(find("MemcpyHtoD"), 70);
}

#[test]
fn unknown_opcodes_trailing_bytes_and_garbage_are_errors() {
    assert_eq!(Request::decode(0, &[]), Err(DecodeError::UnknownOpcode(0)));
    assert_eq!(
        Request::decode(u32::MAX, &[1, 2]),
        Err(DecodeError::UnknownOpcode(u32::MAX))
    );
    // DeviceGet { ordinal: 1 } followed by one extra byte.
    let mut body = Request::samples()
        .into_iter()
        .find(|r| r.name() == "DeviceGet")
        .unwrap()
        .encode_body(Vec::new())
        .unwrap();
    body.push(7);
    assert_eq!(
        Request::decode(11, &body),
        Err(DecodeError::TrailingBytes(1))
    );
    // Random bodies for every opcode: errors or values, never a panic.
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for (op, _) in MESSAGES {
        for len in [0usize, 1, 3, 8, 17, 64, 300] {
            for _ in 0..20 {
                let b = rng.bytes(len);
                let _ = Request::decode(*op, &b);
                let _ = Reply::decode(*op, &b);
            }
        }
    }
}

#[test]
fn truncated_bodies_never_panic() {
    for r in Request::samples() {
        let body = r.encode_body(Vec::new()).unwrap();
        for cut in 0..body.len() {
            assert!(
                Request::decode(r.opcode(), &body[..cut]).is_err(),
                "{}",
                r.name()
            );
        }
    }
}

#[test]
fn byte_lengths_beyond_the_body_are_rejected() {
    // A MemcpyHtoD whose byte vector claims 2^40 bytes but carries 3.
    use rgpu_protocol::messages::*;
    let r = Request::MemcpyHtoD(MemcpyHtoDReq {
        dst: 1,
        src: vec![1, 2, 3],
        byte_count: 3,
    });
    let mut body = r.encode_body(Vec::new()).unwrap();
    // dst varint (1 byte) then the length varint of `src`.
    body.splice(1..2, [0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    assert!(Request::decode(70, &body).is_err());
}

#[test]
fn call_and_reply_headers_round_trip_and_reject_garbage() {
    let h = CallHeader {
        flags: 1,
        opcode: 70,
        id: 42,
        thread: 7,
        ctx: 0x1230,
    };
    let f = h.frame(0);
    assert_eq!(
        u32::from_le_bytes(f[..4].try_into().unwrap()) as usize,
        f.len() - 4
    );
    assert_eq!(CallHeader::parse(&f[4..]).unwrap(), (h, &[][..]));
    let r = ReplyHeader {
        flags: wire::flags::COMPRESSED,
        status: 700,
        id: 9,
        opcode: 0,
    };
    let f = r.frame(0);
    assert_eq!(ReplyHeader::parse(&f[4..]).unwrap().0, r);
    assert!(matches!(
        CallHeader::parse(&[1, 2]),
        Err(DecodeError::ShortFrame(2))
    ));
    assert!(matches!(
        CallHeader::parse(&[9; 40]),
        Err(DecodeError::UnknownKind(9))
    ));
    assert!(matches!(
        ReplyHeader::parse(&[1; 30]),
        Err(DecodeError::UnknownKind(1))
    ));
    assert!(wire::check_len(100, 99).is_err());
    let mut rng = Rng(12345);
    for n in 0..200 {
        let b = rng.bytes(n % 64);
        let _ = CallHeader::parse(&b);
        let _ = ReplyHeader::parse(&b);
        let _ = wire::parse_handshake(kind::HELLO, &b);
    }
}

#[test]
fn handshake_frames_carry_magic_and_version_before_the_body() {
    let hello = Hello {
        spec_hash: 5,
        token: "t".into(),
        pid: 1,
        host: "h".into(),
        client_version: "0".into(),
        visible_devices: Some("1,GPU-ab".into()),
        compress: true,
        resume: Some(wire::Resume {
            session: 3,
            secret: "s".into(),
            waiting: vec![5, 9],
            lane: false,
        }),
        allocation: Some("00ab".into()),
        namespace: 2,
    };
    let f = wire::handshake_frame(kind::HELLO, 77, &hello);
    let (v, body) = wire::parse_handshake(kind::HELLO, &f[4..]).unwrap();
    assert_eq!(v, 77);
    assert_eq!(wire::body_from::<Hello>(body).unwrap(), hello);
    assert_eq!(
        wire::parse_handshake(kind::WELCOME, &f[4..]),
        Err(DecodeError::UnknownKind(kind::HELLO))
    );
    let mut bad = f[4..].to_vec();
    bad[1] = b'X';
    assert_eq!(
        wire::parse_handshake(kind::HELLO, &bad),
        Err(DecodeError::BadMagic)
    );
    let f = wire::handshake_frame(kind::WELCOME, 1, &HandshakeReply::Refused("no".into()));
    let (_, body) = wire::parse_handshake(kind::WELCOME, &f[4..]).unwrap();
    assert_eq!(
        wire::body_from::<HandshakeReply>(body).unwrap(),
        HandshakeReply::Refused("no".into())
    );
}

#[test]
fn compressed_bodies_round_trip_and_hostile_ones_are_refused() {
    // Small or incompressible bodies stay as they are.
    assert!(wire::compress(&[0u8; 1000]).is_none());
    let mut noise = vec![0u8; 1 << 20];
    let mut x = 0x9e3779b97f4a7c15u64;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    assert!(wire::compress(&noise).is_none());
    // Compressible ones shrink and come back exactly.
    let mut body = vec![0u8; 4 << 20];
    body[12345] = 7;
    let c = wire::compress(&body).unwrap();
    assert!(c.len() < body.len() / 100, "{} bytes", c.len());
    assert_eq!(wire::decompress(&c, 8 << 20).unwrap(), body);
    // A declared size above the limit is refused before anything is allocated.
    assert!(matches!(
        wire::decompress(&c, 1 << 20),
        Err(DecodeError::TooLarge { .. })
    ));
    let mut bomb = (u32::MAX).to_le_bytes().to_vec();
    bomb.extend_from_slice(&c[4..]);
    assert!(wire::decompress(&bomb, 64 << 20).is_err());
    // Truncated or garbled data is an error, not a panic.
    assert!(wire::decompress(&c[..c.len() / 2], 8 << 20).is_err());
    assert!(wire::decompress(&[1, 2], 8 << 20).is_err());
}
