//! The fuzz properties (`floodgate_plugins::fuzzing`) as ordinary tests: each runs over every file of its
//! committed corpus (`fuzz/corpus/<target>/`), then over a fixed number of inputs derived from that
//! corpus by a seeded mutator. The fuzzer itself needs a nightly toolchain (`scripts/fuzz.sh`); this runs
//! on stable in every test run, and the same seed always yields the same inputs, so a failure here is
//! reproducible from its test name alone.

use floodgate_http1::fuzzing::corpus::{check, Mutations, Run};
use floodgate_plugins::fuzzing;

/// Bytes that change what the plugins' parsers see: separators of lists, pairs, tokens and addresses,
/// base64 of both alphabets and its padding, whitespace, controls.
const INTERESTING_BYTES: &[u8] = b"\r\n\0:;, \t=&?\"\\./[]{}%+-_019aAzZ\x0b\x0c\x7f\x80\xff";

/// Pieces worth splicing in whole.
const INTERESTING_PIECES: &[&[u8]] = &[
    b"Bearer ",
    b"Basic ",
    b"eyJhbGciOiJIUzI1NiJ9",
    b"eyJhbGciOiJub25lIn0",
    b"==",
    b"apikey=",
    b"access_token=",
    b"jwt=",
    b"access.token=",
    b"[]=",
    b"\ncookie: ",
    b"\nx_token: ",
    b"10.0.0.1",
    b"[::1]:80",
    b"::ffff:",
    b"{id}",
    b"\"keys\":[",
    b"\"kty\":\"oct\"",
    b"plugins:\n",
    b"$http_user_agent",
    b"${request}",
    b"$time_local",
    b"\ntraceparent: 00-",
    b"\nb3: ",
    b"4bf92f3577b34da6a3ce929d0e0e4736",
    b"00f067aa0ba902b7",
];

const MUTATIONS: Mutations = Mutations {
    bytes: INTERESTING_BYTES,
    pieces: INTERESTING_PIECES,
    // The corpus files are far smaller; libFuzzer's default is 4096.
    max_len: 4096,
};

/// One test per target: `target = seed, inputs generated` runs `floodgate_plugins::fuzzing::target`;
/// `target in module = ...` runs the property of that name in another crate's `fuzzing` module (the
/// access log's and the trace headers' targets live in this fuzz package too).
macro_rules! properties {
    ($($target:ident $(in $module:path)? = $seed:literal, $generated:literal;)*) => {$(
        #[test]
        fn $target() {
            let run = Run {
                crate_dir: env!("CARGO_MANIFEST_DIR"),
                target: stringify!($target),
                min_files: 5,
                seed: $seed,
                generated: $generated,
            };
            check(&run, &MUTATIONS, properties!(@property $target $($module)?));
        }
    )*};
    (@property $target:ident) => { fuzzing::$target };
    (@property $target:ident $module:path) => {{
        use $module as module;
        module::$target
    }};
}

// Generated inputs per target, bounded so each runs in a few seconds of an unoptimised build: the
// targets that verify signatures or hash passwords get fewer.
properties! {
    jwt_token = 0x5eed_0101, 3_000;
    basic_authorization = 0x5eed_0102, 3_000;
    forwarded_for = 0x5eed_0103, 20_000;
    config_yaml = 0x5eed_0104, 2_000;
    query_param = 0x5eed_0105, 20_000;
    token_sources = 0x5eed_0106, 20_000;
    path_params = 0x5eed_0107, 20_000;
    jwks_document = 0x5eed_0108, 5_000;
    config_json = 0x5eed_0109, 2_000;
    config_resource_json = 0x5eed_010a, 3_000;
    access_log_line in floodgate_observe::fuzzing = 0x5eed_010b, 20_000;
    trace_context in floodgate_trace::fuzzing = 0x5eed_010c, 20_000;
}
