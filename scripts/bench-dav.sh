#!/usr/bin/env bash
# Benchmark the calendar and contacts libraries: read a generated ICS and Zimbra CSV, then copy
# them into a throwaway Radicale on loopback (started here, stopped by PID on exit).
# Usage: scripts/bench-dav.sh [EVENTS [CONTACTS [CONCURRENCY]]] (default 2000 2000 4)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v radicale >/dev/null || { echo "needs radicale: apt-get install radicale" >&2; exit 1; }
cargo build --release --quiet --example dav_bench
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'bench:benchpass\n' > "$work/users"
cat > "$work/config" <<CONF
[server]
hosts = 127.0.0.1:$port
[auth]
type = htpasswd
htpasswd_filename = $work/users
htpasswd_encryption = plain
delay = 0
[storage]
filesystem_folder = $work/collections
[logging]
level = warning
CONF
radicale --config "$work/config" > "$work/radicale.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
  sleep 0.1
done
target/release/examples/dav_bench "http://127.0.0.1:$port/" bench benchpass "${1:-2000}" "${2:-2000}" "${3:-4}"
