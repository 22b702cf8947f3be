#!/usr/bin/env bash
# Fuzzes floodgate's parsers of untrusted bytes: runs each cargo-fuzz target of every fuzz package
# (crates/http1/fuzz: the HTTP/1.1 codec; crates/plugins/fuzz: credentials, forwarded addresses, query
# parameters and configurations (YAML and the admin API's JSON) as the plugins read them, access log
# templates with the values clients send, and trace headers (traceparent, B3); crates/load-report/fuzz: the load reports
# targets send) for SECONDS each (default 60). CI runs
# `./scripts/fuzz.sh 10` from scripts/test.sh, so the whole run takes about SECONDS times the number of
# targets (twenty-one) plus the builds.
#
# libFuzzer needs a nightly toolchain. Without one this says so and succeeds: the same properties have
# already run on stable over the committed corpus (crates/*/tests/fuzz_corpus.rs). Inputs the fuzzer
# generates go to <package>/target/corpus/, never into the committed corpus; an input that breaks a
# property is kept in <package>/artifacts/<target>/ and fails the run once every target has run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
# Each package with the dictionary its targets share.
packages=("crates/http1/fuzz http.dict" "crates/plugins/fuzz plugins.dict" "crates/load-report/fuzz load_report.dict")

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain installed, fuzzer skipped (the corpus tests ran on stable)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

failed=()
for package in "${packages[@]}"; do
    read -r dir dict <<<"$package"
    cd "$root/$dir"
    # Debug assertions on, so an arithmetic overflow is a finding too.
    cargo +nightly fuzz build --debug-assertions
    for target in $(cargo +nightly fuzz list); do
        echo "fuzz: $dir $target for ${seconds}s"
        scratch="target/corpus/$target"
        mkdir -p "$scratch"
        # The scratch directory comes first: libFuzzer writes what it finds to the first corpus directory.
        if ! cargo +nightly fuzz run --debug-assertions "$target" "$scratch" "corpus/$target" -- \
            -max_total_time="$seconds" -dict="$dict" -timeout=10 -print_final_stats=1; then
            failed+=("$dir:$target")
        fi
    done
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: a property failed in: ${failed[*]}" >&2
    echo "fuzz: reproduce in that package with 'cargo +nightly fuzz run <target> artifacts/<target>/<file>'," >&2
    echo "      minimise with 'cargo +nightly fuzz tmin <target> artifacts/<target>/<file>'" >&2
    exit 1
fi
