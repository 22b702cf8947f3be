#!/usr/bin/env bash
# Fuzzes the HTTP/1.1 codec: runs each cargo-fuzz target of crates/http1/fuzz for SECONDS (default 60).
#
# libFuzzer needs a nightly toolchain. Without one this says so and succeeds: the same properties have
# already run on stable over the committed corpus (crates/http1/tests/fuzz_corpus.rs). Inputs the fuzzer
# generates go to crates/http1/fuzz/target/corpus/, never into the committed corpus; an input that breaks
# a property is kept in crates/http1/fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../crates/http1/fuzz"
seconds="${1:-60}"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain installed, fuzzer skipped (the corpus test ran on stable)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

# Debug assertions on, so an arithmetic overflow is a finding too.
cargo +nightly fuzz build --debug-assertions
failed=()
for target in $(cargo +nightly fuzz list); do
    echo "fuzz: $target for ${seconds}s"
    scratch="target/corpus/$target"
    mkdir -p "$scratch"
    # The scratch directory comes first: libFuzzer writes what it finds to the first corpus directory.
    if ! cargo +nightly fuzz run --debug-assertions "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -dict=http.dict -timeout=10 -print_final_stats=1; then
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: a property failed in: ${failed[*]}" >&2
    echo "fuzz: reproduce with 'cargo +nightly fuzz run <target> artifacts/<target>/<file>'," >&2
    echo "      minimise with 'cargo +nightly fuzz tmin <target> artifacts/<target>/<file>'" >&2
    exit 1
fi
