#!/usr/bin/env bash
# Conformance check of the fake Stream gateway against DingTalk's official
# Python Stream SDK (dingtalk-stream on PyPI): the SDK connects to the fake,
# receives a bot message, a ping and an event, acks them, and reconnects
# with a new ticket after a disconnect frame.
#
# Installs the SDK into a throwaway virtualenv under the cargo target folder
# (reused by later runs), then runs the Rust driver
# tests/api/stream.rs::official_python_sdk_conformance.
#
# Skips (exit 0, with a note) when python3 or pip is missing; fails when the
# SDK cannot be installed or the check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

sdk_version="${DINGTALK_STREAM_SDK_VERSION:-0.24.3}"
skip() {
    echo "stream SDK conformance: SKIPPED ($1)"
    exit 0
}
command -v python3 >/dev/null 2>&1 || skip "python3 not found"
python3 -m pip --version >/dev/null 2>&1 || skip "pip not available for python3"

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
env_dir="$(cd "$target" && pwd)/stream-sdk-py-$sdk_version"
has_sdk() {
    "$@" -c "import sys, dingtalk_stream.version as v; sys.exit(v.VERSION_STRING != '$sdk_version')" \
        >/dev/null 2>&1
}

if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    python="$env_dir/venv/bin/python"
    if ! { [ -x "$python" ] && has_sdk "$python"; }; then
        echo "stream SDK conformance: installing dingtalk-stream==$sdk_version into $env_dir/venv"
        rm -rf "$env_dir/venv"
        python3 -m venv "$env_dir/venv"
        "$python" -m pip install --quiet --disable-pip-version-check "dingtalk-stream==$sdk_version"
    fi
else
    # No venv module (e.g. Debian without python3-venv): a private --target folder.
    python="python3"
    export PYTHONPATH="$env_dir/site${PYTHONPATH:+:$PYTHONPATH}"
    if ! has_sdk python3; then
        echo "stream SDK conformance: installing dingtalk-stream==$sdk_version into $env_dir/site"
        rm -rf "$env_dir/site"
        python3 -m pip install --quiet --disable-pip-version-check --target "$env_dir/site" \
            "dingtalk-stream==$sdk_version"
    fi
fi
has_sdk "$python" || { echo "stream SDK conformance: dingtalk-stream $sdk_version is not importable"; exit 1; }

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export READBOT_STREAM_SDK_PYTHON="$python"
set +e
cargo test --locked --test api -- --ignored --exact stream::official_python_sdk_conformance 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "stream SDK conformance: FAILED"
    exit "$status"
fi
if ! grep -q "test result: ok. 1 passed" "$log"; then
    echo "stream SDK conformance: FAILED (the driver test did not run)"
    exit 1
fi
echo "stream SDK conformance: passed (dingtalk-stream $sdk_version)"
