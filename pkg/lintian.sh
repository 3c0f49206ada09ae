#!/usr/bin/env bash
# pkg/lintian.sh FILE.deb — lintian must report no error, and no warning that is not listed
# (with its reason) in pkg/lintian-accepted.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(lintian --tag-display-limit 0 "$1" 2>&1 | grep -E '^[EW]: ' || true)
echo "${out:-lintian: clean}"
accepted=$(grep -Ev '^#|^$' pkg/lintian-accepted | paste -sd'|')
bad=$(grep -E '^E: ' <<<"$out" || true)
bad+=$(grep -E '^W: ' <<<"$out" | grep -Ev ": ($accepted)( |$)" || true)
[ -z "$bad" ] || { echo "lintian: not accepted:" >&2; echo "$bad" >&2; exit 1; }
