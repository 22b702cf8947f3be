#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floodgate_observe::fuzzing::access_log_line(data));
