#!/usr/bin/env bash
# The README's main command: installs what it needs, then starts the local stack.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec node_modules/.bin/tsx manage.ts local "$@"
