#!/usr/bin/env bash
# Runs the whole test suite: unit, golden, API and end-to-end tests (real
# QEMU booting the real test guest), then the benchmark in --quick mode to
# prove it runs. Needs what scripts/install-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
cargo build --workspace --bins
# Build (or find in the cache) the test guest once, before tests race for it.
./target/debug/ferrovirt-test-guest >/dev/null
cargo nextest run --workspace --profile ci
# The benchmarks in quick mode: CI only checks that they run. Their quick
# results go to bench/results/quick/ (git-ignored), never over a full run's.
(cd bench && python3 -m fvbench all --quick --results results/quick)
