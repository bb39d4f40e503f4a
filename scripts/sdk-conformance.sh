#!/usr/bin/env bash
# The fake DingTalk against DingTalk's official Python SDKs (alibabacloud-dingtalk,
# dingtalk-stream from PyPI). See scripts/sdk-conformance.py.
#
# Exit 0: conformant, or skipped with a note (no python3/pip, or PyPI out of
# reach). Exit 1: the check ran and failed.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
venv="${READBOT_PY_VENV:-/tmp/readbot-py}"
. scripts/py-venv.sh
if ! ensure_venv "alibabacloud-dingtalk==2.2.65" "dingtalk-stream==0.24.3"; then
  echo "SDK conformance: skipped (python3 with venv and pip, and PyPI, are needed)"
  exit 0
fi
cargo build --locked --quiet --example fake_dingtalk
"$venv/bin/python" scripts/sdk-conformance.py --fake "$target/debug/examples/fake_dingtalk"
