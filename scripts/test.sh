#!/usr/bin/env bash
# The test command (README): installs what the tests need when it is missing, then runs
# formatting, lints and the whole suite (unit, in-process and end-to-end over loopback).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip)
command -v linphonec >/dev/null || need+=(linphone-cli)
command -v kamailio >/dev/null || need+=(kamailio)
# Debian keeps initdb off PATH (and psql alone comes with the client package).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v ip >/dev/null || need+=(iproute2)
command -v sox >/dev/null || need+=(sox)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: need root to apt-get install ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets --no-fail-fast
