//! The fuzz properties (`floodgate_plugins::fuzzing`) as ordinary tests: each runs over every file of its
//! committed corpus (`fuzz/corpus/<target>/`), then over a fixed number of inputs derived from that
//! corpus by a seeded mutator. The fuzzer itself needs a nightly toolchain (`scripts/fuzz.sh`); this runs
//! on stable in every test run, and the same seed always yields the same inputs, so a failure here is
//! reproducible from its test name alone.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use floodgate_plugins::fuzzing;

/// Largest generated input; the corpus files are far smaller, and libFuzzer's default is 4096.
const MAX_LEN: usize = 4096;

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
    b"\ncookie: ",
    b"10.0.0.1",
    b"[::1]:80",
    b"::ffff:",
    b"{id}",
    b"\"keys\":[",
    b"\"kty\":\"oct\"",
    b"plugins:\n",
];

/// xorshift64*: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One to four edits of `input`: byte flips, insertions of interesting bytes and pieces, deletions,
/// truncations, duplicated ranges and splices with another corpus file.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(8) {
            0 if at < input.len() => input[at] ^= 1 << rng.below(8),
            1 => input.insert(at, INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]),
            2 => {
                let piece = INTERESTING_PIECES[rng.below(INTERESTING_PIECES.len())];
                input.splice(at..at, piece.iter().copied());
            }
            3 if at < input.len() => {
                let end = (at + 1 + rng.below(8)).min(input.len());
                input.drain(at..end);
            }
            4 => input.truncate(at),
            5 if at < input.len() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                let range = input[at..end].to_vec();
                let to = rng.below(input.len() + 1);
                input.splice(to..to, range);
            }
            6 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ if at < input.len() => input[at] = rng.next() as u8,
            _ => input.push(rng.next() as u8),
        }
    }
    input.truncate(MAX_LEN);
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    // Sorted, so the mutator starts from the same corpus in the same order everywhere.
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(
        inputs.len() >= 5,
        "{}: a seed corpus, not {} files",
        dir.display(),
        inputs.len()
    );
    inputs
}

/// Runs `property` over the corpus of `target` and `generated` inputs derived from it; fails with the
/// first input that breaks it, escaped so it can be pasted into a unit test.
fn check(target: &str, seed: u64, generated: usize, property: fn(&[u8])) {
    let corpus = corpus(target);
    let mut rng = Rng(seed);
    let generated = (0..generated).map(|_| {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        input
    });
    for input in corpus.clone().into_iter().chain(generated) {
        if catch_unwind(AssertUnwindSafe(|| property(&input))).is_err() {
            panic!(
                "{target}: the property fails on b\"{}\"",
                input.escape_ascii()
            );
        }
    }
}

macro_rules! properties {
    ($($target:ident = $seed:literal, $generated:literal;)*) => {$(
        #[test]
        fn $target() {
            check(stringify!($target), $seed, $generated, fuzzing::$target);
        }
    )*};
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
}
