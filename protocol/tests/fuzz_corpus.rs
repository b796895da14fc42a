//! Replays the fuzz corpus (`protocol/fuzz/corpus/<target>/`) and any saved crash reproducers
//! (`protocol/fuzz/artifacts/<target>/`) through the same entry points the fuzz targets call, on
//! every test run, so an input that once broke a decoder stays fixed. The fuzzing itself runs
//! with `cargo xtask fuzz` (CI: a bounded time per target).
//!
//! The seed inputs are valid encodings made by the protocol itself; `cargo test -p rgpu-protocol
//! --test fuzz_corpus -- --ignored write_seeds` rewrites them after a wire-format change.

use rgpu_protocol::fuzzing;
use rgpu_protocol::messages::*;
use rgpu_protocol::wire::{self, CallHeader, HandshakeReply, Hello, ReplyHeader, Welcome};
use std::path::{Path, PathBuf};

type Entry = fn(&[u8]);

const TARGETS: &[(&str, Entry)] = &[
    ("call_frame", fuzzing::call_frame),
    ("reply_frame", fuzzing::reply_frame),
    ("handshake", fuzzing::handshake),
    ("connection_file", fuzzing::connection_file),
    ("module_image", fuzzing::module_image),
    ("ptx", rgpu_ptx::fuzz_module),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Call frames without their length prefix, as the server's decoder sees them.
fn seed_calls() -> Vec<Vec<u8>> {
    let reqs = [
        Request::Init(InitReq { flags: 0 }),
        Request::MemAlloc(MemAllocReq { bytesize: 4096 }),
        Request::MemcpyHtoD(MemcpyHtoDReq {
            dst: 0x1000,
            src: vec![1, 2, 3, 4],
            byte_count: 4,
        }),
        Request::LaunchKernel(LaunchKernelReq {
            func: 0x1010,
            grid_x: 4,
            grid_y: 1,
            grid_z: 1,
            block_x: 128,
            block_y: 1,
            block_z: 1,
            shared_mem: 0,
            stream: 0,
            params: vec![0; 28],
            cooperative: false,
        }),
        Request::ModuleGetFunction(ModuleGetFunctionReq {
            module: 0x1020,
            name: "vadd".into(),
        }),
        Request::Memcpy2D(Memcpy2DReq {
            mode: 0,
            dst: 0x2000,
            dst_pitch: 512,
            src: 0,
            src_pitch: 0,
            width: 4,
            height: 2,
            data: vec![7; 8],
            stream: 0,
            is_async: false,
        }),
    ];
    reqs.iter()
        .map(|r| {
            let body = r.encode_body(Vec::new()).unwrap();
            let hdr = CallHeader {
                opcode: r.opcode(),
                id: 9,
                thread: 3,
                ctx: 0x1030,
                ..CallHeader::default()
            };
            let mut f = hdr.frame(body.len());
            f.extend_from_slice(&body);
            f.split_off(4)
        })
        .collect()
}

fn seed_replies() -> Vec<Vec<u8>> {
    let reps = [
        Reply::Init(InitRep {
            driver_version: 13050,
        }),
        Reply::MemcpyDtoH(MemcpyDtoHRep { dst: vec![9, 8, 7] }),
        Reply::DeviceSummary(DeviceSummaryRep {
            attributes: vec![1, 2, i32::MIN],
            name: "rgpu CPU device".into(),
            uuid: vec![0xab; 16],
            total_mem: 1 << 30,
        }),
    ];
    reps.iter()
        .map(|r| {
            let body = r.encode_body(Vec::new()).unwrap();
            let mut f = ReplyHeader {
                flags: 0,
                status: 0,
                id: 9,
                opcode: r.opcode(),
            }
            .frame(body.len());
            f.extend_from_slice(&body);
            f.split_off(4)
        })
        .collect()
}

fn seed_handshakes() -> Vec<Vec<u8>> {
    let hello = Hello {
        spec_hash: SPEC_HASH,
        token: "ab".repeat(32),
        pid: 4242,
        host: "client".into(),
        client_version: "0.1.0".into(),
        visible_devices: Some("0,GPU-ab".into()),
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
    let welcome = HandshakeReply::Welcome(Welcome {
        session: 7,
        server_version: "0.1.0".into(),
        driver_version: 13050,
        devices: vec![wire::DeviceLoad {
            server_index: 0,
            sessions: 1,
            exclusive: true,
        }],
        fingerprint: String::new(),
        resume_secret: "ab".repeat(16),
        resume_window_ms: 30_000,
        resumed: Some(wire::Resumed {
            frames_read: 12,
            answering: vec![9],
        }),
    });
    vec![
        wire::handshake_frame(wire::kind::HELLO, wire::PROTOCOL_VERSION, &hello).split_off(4),
        wire::handshake_frame(wire::kind::WELCOME, wire::PROTOCOL_VERSION, &welcome).split_off(4),
        wire::handshake_frame(
            wire::kind::WELCOME,
            wire::PROTOCOL_VERSION,
            &HandshakeReply::Refused("device unavailable: busy".into()),
        )
        .split_off(4),
    ]
}

fn seed_connection_files() -> Vec<Vec<u8>> {
    vec![br#"{"address":"127.0.0.1:7600","server_name":"rgpu","fingerprint":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","token":"abcd","insecure":false}"#.to_vec()]
}

fn seed_images() -> Vec<Vec<u8>> {
    vec![
        b".version 8.0\n.target sm_75\n.address_size 64\n.visible .entry k()\n{\n ret;\n}\n\0"
            .to_vec(),
        b"\x7fELF\x02\x01\x01".to_vec(),
        [0x50u8, 0xed, 0x55, 0xba, 1, 0, 0x10, 0].to_vec(),
    ]
}

fn seed_ptx() -> Vec<Vec<u8>> {
    vec![br#".version 8.0
.target sm_75
.address_size 64
.global .align 4 .u32 counter = 5;
.visible .entry vadd(.param .u64 a, .param .u64 b, .param .u64 c, .param .u32 n)
{
  .reg .pred %p<2>;
  .reg .b32 %r<6>;
  .reg .f32 %f<4>;
  .reg .b64 %rd<11>;
  ld.param.u64 %rd1, [a];
  ld.param.u64 %rd2, [b];
  ld.param.u64 %rd3, [c];
  ld.param.u32 %r2, [n];
  mov.u32 %r3, %ctaid.x;
  mov.u32 %r4, %ntid.x;
  mov.u32 %r5, %tid.x;
  mad.lo.s32 %r1, %r3, %r4, %r5;
  setp.ge.s32 %p1, %r1, %r2;
  @%p1 bra DONE;
  cvta.to.global.u64 %rd4, %rd1;
  mul.wide.s32 %rd5, %r1, 4;
  add.s64 %rd6, %rd4, %rd5;
  ld.global.f32 %f1, [%rd6];
  cvta.to.global.u64 %rd7, %rd2;
  add.s64 %rd8, %rd7, %rd5;
  ld.global.f32 %f2, [%rd8];
  add.f32 %f3, %f1, %f2;
  cvta.to.global.u64 %rd9, %rd3;
  add.s64 %rd10, %rd9, %rd5;
  st.global.f32 [%rd10], %f3;
DONE:
  ret;
}
"#
    .to_vec()]
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "call_frame" => seed_calls(),
        "reply_frame" => seed_replies(),
        "handshake" => seed_handshakes(),
        "connection_file" => seed_connection_files(),
        "module_image" => seed_images(),
        "ptx" => seed_ptx(),
        _ => vec![],
    }
}

#[test]
fn seeds_are_valid_inputs() {
    // The seeds must decode, so the fuzzer starts from inputs that reach deep into each decoder.
    for f in seed_calls() {
        let (h, body) = CallHeader::parse(&f).unwrap();
        Request::decode(h.opcode, body).unwrap();
    }
    for f in seed_replies() {
        let (h, body) = ReplyHeader::parse(&f).unwrap();
        Reply::decode(h.opcode, body).unwrap();
    }
    let hs = seed_handshakes();
    let (_, body) = wire::parse_handshake(wire::kind::HELLO, &hs[0]).unwrap();
    wire::body_from::<Hello>(body).unwrap();
    let text = String::from_utf8(seed_connection_files().remove(0)).unwrap();
    rgpu_protocol::connfile::ConnectionFile::parse(&text).unwrap();
    let ptx = String::from_utf8(seed_ptx().remove(0)).unwrap();
    rgpu_ptx::parser::parse(&ptx).unwrap();
}

#[test]
fn corpus_and_reproducers_never_panic() {
    let mut n = 0;
    for (target, entry) in TARGETS {
        for input in seeds(target) {
            entry(&input);
            n += 1;
        }
        for sub in ["corpus", "artifacts"] {
            for f in files(&fuzz_dir().join(sub).join(target)) {
                let data = std::fs::read(&f).unwrap();
                let r = std::panic::catch_unwind(|| entry(&data));
                assert!(r.is_ok(), "{target}: {} panics", f.display());
                n += 1;
            }
        }
    }
    eprintln!("replayed {n} inputs");
    assert!(n >= TARGETS.len(), "no inputs replayed");
}

#[test]
#[ignore = "writes the seed corpus; run by hand after a wire-format change"]
fn write_seeds() {
    for (target, _) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
}
