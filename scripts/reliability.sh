#!/usr/bin/env bash
# readbot's reliability suite: bad input, faults, crashes, load, contract and
# SDK conformance, at a larger scale than `cargo test`. Prints one line per
# area, e.g.
#   bad inputs tried: N, accepted: 0
#   crash cycles: N, acknowledged notices lost: 0
#   faults injected: N kinds, summaries completed or explained: N
# and exits non-zero if any area failed. RELIABILITY.md records a run.
#
# Knobs (environment):
#   READBOT_RELIABILITY_SCALE  inputs/cases multiplier of the in-suite areas (10)
#   PROPTEST_CASES             cases per property test (5000)
#   CRASH_CYCLES               SIGKILL/restart cycles (100)
#   FUZZ_SECONDS               libFuzzer time per target (60)
#   SCHEMATHESIS_EXAMPLES      max examples per API operation (100)
#   READBOT_RELIABILITY_SEED   seed of the in-suite random inputs
#
# Needs: the Rust toolchain; cargo-fuzz (installed from crates.io if missing;
# run on stable with RUSTC_BOOTSTRAP=1); python3 + venv + pip for schemathesis
# and the official DingTalk SDKs (PyPI). Areas whose tools cannot be had are
# reported as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
export READBOT_RELIABILITY_SCALE="${READBOT_RELIABILITY_SCALE:-10}"
export PROPTEST_CASES="${PROPTEST_CASES:-5000}"
cycles="${CRASH_CYCLES:-100}"
fuzz_secs="${FUZZ_SECONDS:-60}"
st_examples="${SCHEMATHESIS_EXAMPLES:-100}"
target="${CARGO_TARGET_DIR:-target}"
log="$(mktemp -d)"
lines=()
failed=0
area() { # area NAME STATUS LINE...
  local name="$1" status="$2"; shift 2
  for l in "$@"; do lines+=("$l"); echo ">> $l"; done
  if [ "$status" -ne 0 ]; then lines+=("$name: FAILED (see $log)"); failed=1; echo ">> $name: FAILED"; fi
}
started=$SECONDS

echo "== property tests ($PROPTEST_CASES cases each)"
cargo test --locked --lib -- dingtalk::callback dingtalk::signature bot::command dingtalk::client::limiter \
  render::markdown >"$log/proptest.out" 2>&1
st=$?
n="$(grep -oE '^test result: ok. [0-9]+ passed' "$log/proptest.out" | grep -oE '[0-9]+' | head -1)"
area "property tests" $st "property tests (callback parser, command parser, signature, limiter, markdown neutraliser): ${n:-0} tests, $PROPTEST_CASES cases per property, failures: $([ $st -eq 0 ] && echo 0 || echo some)"

echo "== fail-closed, replay, exactly-once, faults, shutdown, secrets, rate limit (scale $READBOT_RELIABILITY_SCALE)"
cargo test --locked --test api -- --nocapture --test-threads 2 \
  reliability:: fail_closed:: replay:: exactly_once:: faults:: shutdown:: secrets:: conn:: >"$log/suite.out" 2>&1
st=$?
mapfile -t got < <(grep '^RELIABILITY ' "$log/suite.out" | sed 's/^RELIABILITY //')
area "in-suite areas" $st "${got[@]}"

echo "== queue memory"
cargo test --locked --lib -- --nocapture bot::queued >"$log/queue.out" 2>&1
st=$?
area "queue memory" $st "queue memory: $(grep -oE 'worst case per waiting message: [0-9]+ B \(was [0-9]+ B\)' "$log/queue.out" || echo 'not measured')"

echo "== crash test ($cycles cycles)"
cargo build --locked --quiet --bin readbot --example crash_test >"$log/crash-build.out" 2>&1 \
  && "$target/debug/examples/crash_test" --cycles "$cycles" >"$log/crash.out" 2>&1
st=$?
area "crash test" $st "$(grep '^crash cycles' "$log/crash.out" 2>/dev/null || echo 'crash cycles: not run')"

echo "== store health, worker panics, token lifetime, retention"
cargo test --locked --test api -- --nocapture --test-threads 2 health:: >"$log/health.out" 2>&1
st=$?
mapfile -t got < <(grep -o 'RELIABILITY .*' "$log/health.out" | sed 's/^RELIABILITY //')
area "store health" $st "${got[@]}"
cargo test --locked --lib -- bot::tests::answers_survive_a_panic dingtalk::client::tests::absurd_expire_in \
  dingtalk::client::token::tests::absurd >"$log/panic.out" 2>&1
st=$?
n="$(grep -oE '^test result: ok. [0-9]+ passed' "$log/panic.out" | grep -oE '[0-9]+' | head -1)"
area "worker panics" $st "worker panics: 32 injected (2 x the 16 workers), later message answered, nothing left in flight; absurd expireIn (i64::MAX, 1e30, u64::MAX, 17 digits) clamped to 7200 s, no panic ($([ $st -eq 0 ] && echo "${n:-0} tests passed" || echo FAILED))"
# The disk-full case on a real file system needs a small tmpfs (root, or a
# container allowed to mount); skipped otherwise.
tmpfs="$(mktemp -d)"
if mount -t tmpfs -o size=2m tmpfs "$tmpfs" 2>/dev/null; then
  READBOT_TMPFS_DIR="$tmpfs" cargo test --locked --test api -- --ignored --nocapture --test-threads 1 \
    health::a_real_full_disk_on_tmpfs health::sled_keeps_its_first_io_error_on_tmpfs >"$log/tmpfs.out" 2>&1
  st=$?
  umount "$tmpfs"
  mapfile -t got < <(grep -o 'RELIABILITY .*' "$log/tmpfs.out" | sed 's/^RELIABILITY //')
  area "real full disk" $st "${got[@]}"
else
  area "real full disk" 0 "real full disk: skipped (cannot mount a tmpfs here)"
fi
rmdir "$tmpfs" 2>/dev/null

echo "== fuzz smoke (${fuzz_secs}s per target)"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked >"$log/cargo-fuzz-install.out" 2>&1
fi
if cargo fuzz --version >/dev/null 2>&1; then
  total_runs=0; crashes=0; fst=0
  for t in callback_parse command_parse signature_verify event_push; do
    corpus="$log/corpus-$t"; mkdir -p "$corpus"
    # fuzz/ builds into fuzz/target (sanitizer flags): never into a shared CARGO_TARGET_DIR.
    (cd fuzz && env -u CARGO_TARGET_DIR RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" "$corpus" "corpus/$t" -- \
        -max_total_time="$fuzz_secs" -print_final_stats=1) >"$log/fuzz-$t.out" 2>&1
    rc=$?
    runs="$(grep -oE 'Done [0-9]+ runs' "$log/fuzz-$t.out" | grep -oE '[0-9]+' | tail -1)"
    total_runs=$((total_runs + ${runs:-0}))
    if [ $rc -ne 0 ]; then crashes=$((crashes + 1)); fst=1; echo "fuzz target $t failed: $log/fuzz-$t.out"; fi
  done
  area "fuzz" $fst "fuzz executions: $total_runs over 4 targets (${fuzz_secs}s each), crashing targets: $crashes"
else
  area "fuzz" 0 "fuzz: skipped (cargo-fuzz could not be installed)"
fi

echo "== schemathesis ($st_examples examples per operation)"
scripts/schemathesis.sh "$st_examples" >"$log/schemathesis.out" 2>&1
st=$?
if [ $st -eq 2 ]; then
  area "schemathesis" 0 "API contract: skipped (schemathesis could not be installed)"
else
  area "schemathesis" $st "$(grep '^API cases generated' "$log/schemathesis.out" || echo 'API cases generated: 0')"
fi

echo "== SDK conformance"
scripts/sdk-conformance.sh >"$log/sdk.out" 2>&1
st=$?
area "SDK conformance" $st "$(grep '^SDK conformance' "$log/sdk.out" || echo 'SDK conformance: not run')"

echo
echo "== readbot reliability summary ($((SECONDS - started)) s; logs in $log)"
printf '%s\n' "${lines[@]}"
exit $failed
