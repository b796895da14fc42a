#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rgpu_protocol::fuzzing::connection_file(data));
