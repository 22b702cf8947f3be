//! Running a fuzz property on stable, as an ordinary test: over every file of a committed corpus,
//! then over inputs a seeded mutator derives from it. The same seed gives the same inputs on every
//! machine, so a failure is reproducible from the test's name alone. Shared by every crate that has
//! fuzz targets (the HTTP/1.1 codec, the plugins).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// What the mutator may splice into an input, chosen for the parsers under test.
pub struct Mutations {
    /// Single bytes worth inserting (separators, controls, digits).
    pub bytes: &'static [u8],
    /// Pieces worth inserting whole (keywords, framing, prefixes).
    pub pieces: &'static [&'static [u8]],
    /// Largest generated input (libFuzzer's default is 4096).
    pub max_len: usize,
}

/// How one property is run.
pub struct Run<'a> {
    /// The crate whose fuzz target it is (`env!("CARGO_MANIFEST_DIR")`): its corpus is
    /// `fuzz/corpus/<target>/` there.
    pub crate_dir: &'a str,
    /// The fuzz target's name.
    pub target: &'a str,
    /// Fewest files the corpus must hold (a seed corpus, not an empty folder).
    pub min_files: usize,
    /// The mutator's seed.
    pub seed: u64,
    /// Inputs generated on top of the corpus.
    pub generated: usize,
}

/// Runs `property` over the corpus and the generated inputs; panics with the first input that breaks
/// it, escaped so it can be pasted into a unit test.
pub fn check(run: &Run<'_>, mutations: &Mutations, property: fn(&[u8])) {
    let dir = Path::new(run.crate_dir)
        .join("fuzz/corpus")
        .join(run.target);
    let corpus = read_corpus(&dir, run.min_files);
    let mut rng = Rng(run.seed);
    let generated = (0..run.generated).map(|_| {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, mutations, &mut input, &corpus);
        input
    });
    let name = dir.display();
    for input in corpus.clone().into_iter().chain(generated) {
        if catch_unwind(AssertUnwindSafe(|| property(&input))).is_err() {
            panic!(
                "{name}: the property fails on b\"{}\"",
                input.escape_ascii()
            );
        }
    }
}

fn read_corpus(dir: &Path, min_files: usize) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    // Sorted, so the mutator starts from the same corpus in the same order everywhere.
    files.sort();
    let inputs: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect();
    assert!(
        inputs.len() >= min_files,
        "{}: a seed corpus, not {} files",
        dir.display(),
        inputs.len()
    );
    inputs
}

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
fn mutate(rng: &mut Rng, with: &Mutations, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(8) {
            0 if at < input.len() => input[at] ^= 1 << rng.below(8),
            1 => input.insert(at, with.bytes[rng.below(with.bytes.len())]),
            2 => {
                let piece = with.pieces[rng.below(with.pieces.len())];
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
    input.truncate(with.max_len);
}
