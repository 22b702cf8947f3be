//! The fuzz property (`floodgate_load_report::fuzz_property`) as an ordinary test: over every file of
//! the committed corpus (`fuzz/corpus/load_report/`), then over inputs a seeded mutator derives from it.

use floodgate_http1::fuzzing::corpus::{check, Mutations, Run};

const MUTATIONS: Mutations = Mutations {
    bytes: b"\r\n\0, \t=.-+eE019\x7f\x80\xff",
    pieces: &[
        b"TEXT ",
        b"JSON ",
        b"cpu_utilization=",
        b"application_utilization=",
        b"mem_utilization=",
        b"NaN",
        b"inf",
        b"1e308",
        b"-0",
    ],
    max_len: 512,
};

#[test]
fn load_report() {
    let run = Run {
        crate_dir: env!("CARGO_MANIFEST_DIR"),
        target: "load_report",
        min_files: 10,
        seed: 0x5eed_0101,
        generated: 20_000,
    };
    check(&run, &MUTATIONS, floodgate_load_report::fuzz_property);
}
