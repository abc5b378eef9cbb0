#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| centerloss::fuzz::idx(data));
