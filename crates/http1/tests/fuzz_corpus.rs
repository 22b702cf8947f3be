//! The fuzz properties (`floodgate_http1::fuzzing`) as ordinary tests: each runs over every file of its
//! committed corpus (`fuzz/corpus/<target>/`), then over a fixed number of inputs derived from that
//! corpus by a seeded mutator. The fuzzer itself needs a nightly toolchain (`scripts/fuzz.sh`); this runs
//! on stable in every test run, and the same seed always yields the same inputs, so a failure here is
//! reproducible from its test name alone.

use floodgate_http1::fuzzing::corpus::{check, Mutations, Run};

use floodgate_http1::fuzzing;

/// Generated inputs per target, on top of the corpus.
const GENERATED: usize = 20_000;

/// Bytes that change what an HTTP/1.1 parser sees: line ends, separators, digits, quotes, controls.
const INTERESTING_BYTES: &[u8] = b"\r\n\0:; \t,=\"\\0123456789aAfFxX-+@/[]%\x0b\x0c\x7f\x80\xff";

/// Pieces of framing worth splicing in whole.
const INTERESTING_PIECES: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b"0\r\n\r\n",
    b"chunked",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n",
    b"Host: a\r\n",
    b"GET / HTTP/1.1\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b";ext=\"v\"",
    b"ffffffffffffffff",
];

const MUTATIONS: Mutations = Mutations {
    bytes: INTERESTING_BYTES,
    pieces: INTERESTING_PIECES,
    // The corpus files are far smaller; libFuzzer's default is 4096.
    max_len: 4096,
};

macro_rules! properties {
    ($($target:ident = $seed:literal),* $(,)?) => {$(
        #[test]
        fn $target() {
            let run = Run {
                crate_dir: env!("CARGO_MANIFEST_DIR"),
                target: stringify!($target),
                min_files: 10,
                seed: $seed,
                generated: GENERATED,
            };
            check(&run, &MUTATIONS, fuzzing::$target);
        }
    )*};
}

properties! {
    request_head = 0x5eed_0001,
    response_head = 0x5eed_0002,
    chunked_body = 0x5eed_0003,
    chunked_grammar = 0x5eed_0004,
    chunk_line = 0x5eed_0005,
    field_line = 0x5eed_0006,
    authority = 0x5eed_0007,
    framing_fields = 0x5eed_0008,
}
