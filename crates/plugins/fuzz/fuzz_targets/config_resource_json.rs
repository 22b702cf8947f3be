#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floodgate_plugins::fuzzing::config_resource_json(data));
