#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floodgate_trace::fuzzing::trace_context(data));
