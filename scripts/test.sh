#!/usr/bin/env bash
# The README's test command: installs what it needs, then runs every check and every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

echo "== typecheck"; pnpm run -s typecheck
echo "== eslint"; pnpm run -s lint
echo "== prettier"; pnpm run -s format:check
if command -v terraform >/dev/null 2>&1; then
  echo "== terraform fmt"; terraform fmt -check -recursive terraform
else
  echo "== terraform fmt: skipped, terraform is not installed"
fi
# The SDK's notice that its 2027 releases need Node 22 would repeat in every test worker.
echo "== jest"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true \
  pnpm exec jest --ci --json --outputFile="$results" "$@" || status=$?
# One plain closing line that any CI reader understands.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
' "$results" || true
exit "$status"
