#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floodgate_http1::fuzzing::authority(data));
