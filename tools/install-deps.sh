#!/usr/bin/env bash
# tools/install-deps.sh — installs what building, testing, packaging and the demo need on
# Debian 12.
# Used by both README set-up commands (tools/demo.sh and .ci/run). Idempotent.
set -euo pipefail
pkgs=(meson ninja-build gcc g++ clang pkg-config libdbus-1-dev libjansson-dev libglib2.0-dev libssl-dev
      dbus-daemon dbus-bin
      # .ci/run's memory checks: Valgrind, and clang's sanitizer and libFuzzer runtimes
      valgrind libclang-rt-14-dev
      # Debian packaging (.ci/packages): dpkg-buildpackage, dh, lintian
      build-essential dpkg-dev debhelper lintian)
missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "installing: ${missing[*]}" >&2
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
