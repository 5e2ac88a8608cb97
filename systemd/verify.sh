#!/usr/bin/env bash
# Checks the unit with systemd-analyze, pointing ExecStart at a built oms.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
oms="${1:?usage: verify.sh PATH-TO-OMS}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/oms|$(realpath "$oms")|" "$here/openmultistack.service" > "$tmp/openmultistack.service"
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$tmp/openmultistack.service"
echo "systemd unit verified"
