#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rgpu_ptx::fuzz_module(data));
