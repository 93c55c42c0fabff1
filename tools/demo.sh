#!/usr/bin/env bash
# tools/demo.sh — the README's main job on a fresh machine: install dependencies, build, start
# a private notification server in a temp dir, watch it with dbus-monitor, run the demo exchange
# and show what crossed the bus.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

tmp=$(mktemp -d /tmp/vfiipc-demo.XXXXXX)
export VFIIPC_BUS_ADDRESS="unix:path=$tmp/bus"
export VFIIPC_BUS_CONFIG="$PWD/bus-policy/vfiipc-bus.conf"
cleanup() {
        [ -n "${mon:-}" ] && kill "$mon" 2>/dev/null || true
        [ -n "${srv:-}" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

build/tools/notifysvc &
srv=$!
for _ in $(seq 100); do [ -S "$tmp/bus" ] && break; sleep 0.05; done
echo "private server running; bus address: $VFIIPC_BUS_ADDRESS"
echo "watch it yourself with:"
echo "  dbus-monitor --address \"$VFIIPC_BUS_ADDRESS\""
echo
dbus-monitor --address "$VFIIPC_BUS_ADDRESS" >"$tmp/monitor.log" 2>&1 &
mon=$!
sleep 0.5
build/tools/vfiipc-demo "${1:-3}"
sleep 0.3
echo
echo "what dbus-monitor saw (first Notify and Deliver messages):"
grep -A7 -E 'member=(Notify|Deliver)$' "$tmp/monitor.log" | head -40 || true
