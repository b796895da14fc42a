#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rgpu_protocol::fuzzing::reply_frame(data));
