#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floodgate_load_report::fuzz_property(data));
