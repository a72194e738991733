#!/usr/bin/env bash
# Installs everything BinaryAlert needs on Debian 12 with Node 20: system packages, pnpm, the
# workspace's dependencies and the native yara addon. Safe to run again; each step is skipped
# when already done. Sourced by scripts/test.sh and scripts/local.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

apt_packages=(libyara-dev libarchive-dev nettle-dev libzstd-dev liblz4-dev yara python3-yara awscli zip unzip p7zip-full xz-utils bzip2 git python3 make g++ binutils)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$pnpm_version" ]; then
  # corepack's signature check fails on some machines; npm installs the pinned version reliably.
  echo "bootstrap: installing pnpm@$pnpm_version"
  npm install -g --silent "pnpm@$pnpm_version"
fi

pnpm install --frozen-lockfile --reporter=silent
pnpm --filter @binaryalert/yara run build
