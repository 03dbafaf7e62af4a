#!/usr/bin/env bash
# Why `mailplan apply` does not batch its writes in LDAP transactions (RFC 5805), shown with
# OpenLDAP's own tools only: a throwaway slapd takes transactions of 32 adds from
# `ldapmodify -E txn=commit`, first alone, then with one base search after another beside them.
# slapd 2.5.13 (Debian 12's) commits them all alone, and dies with a segmentation fault within
# seconds once something searches while it commits.
#
# Usage: scripts/slapd-txn-crash.sh [TRANSACTIONS]   (default 300 per round)
# Needs: slapd, ldap-utils. Runs slapd on a free loopback port from a temporary folder and
# stops it by PID on exit. Exits 0 when slapd survived both rounds, 1 when it died.
set -euo pipefail
TXNS=${1:-300}
export PATH="$PATH:/usr/sbin"
for b in slapd slapadd ldapsearch ldapmodify; do
  command -v "$b" >/dev/null || { echo "$b is missing: apt-get install slapd ldap-utils" >&2; exit 2; }
done

W=$(mktemp -d /tmp/slapd-txn.XXXXXX)
cd "$(dirname "$0")/.."
. scripts/slapd-lib.sh
READER_PID=""
cleanup() {
  [ -n "$READER_PID" ] && kill "$READER_PID" 2>/dev/null || true
  stop_slapd
  rm -rf "$W"
}
trap cleanup EXIT

URL="ldap://127.0.0.1:$(free_port)"
BASE='dc=example,dc=test'
PW='txn-secret'
mkdir -p "$W/slapd.d" "$W/db"
{
  slapd_config_head /etc/ldap/schema/core.ldif
  slapd_config_database
  slapd_mdb_database 1 "$BASE" "$PW" "$W/db"
} > "$W/config.ldif"
slapadd -n0 -F "$W/slapd.d" -l "$W/config.ldif" >/dev/null
printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n' "$BASE" |
  slapadd -q -F "$W/slapd.d" -b "$BASE"

start_slapd

# One transaction: 32 adds under the base, numbered from $1.
transaction() {
  local i
  for i in $(seq "$1" $(($1 + 31))); do
    printf 'dn: cn=d%s,%s\nchangetype: add\nobjectClass: device\ncn: d%s\n\n' "$i" "$BASE" "$i"
  done > "$W/txn.ldif"
  ldapmodify -x -H "$URL" -D "cn=admin,$BASE" -w "$PW" -E txn=commit -f "$W/txn.ldif" >/dev/null 2>&1
}

# Round $1 ("alone" or "with searches"), adding entries numbered from $2.
round() {
  local t
  for t in $(seq 0 $((TXNS - 1))); do
    if ! transaction $(($2 + t * 32)); then
      if kill -0 "$SLAPD_PID" 2>/dev/null; then
        echo "$1: transaction $((t + 1)) failed, slapd still running" >&2
        exit 2
      fi
      wait "$SLAPD_PID" 2>/dev/null && status=0 || status=$?
      echo "$1: slapd died during transaction $((t + 1)) of $TXNS (exit status $status; 139 is a segmentation fault)"
      SLAPD_PID=""
      exit 1
    fi
  done
  echo "$1: $TXNS transactions of 32 adds committed"
}

echo "slapd $(slapd -VV 2>&1 | grep -o 'slapd [0-9.]*' | head -1 | cut -d' ' -f2) on $URL"
round "alone" 0
(while true; do ldapsearch -x -H "$URL" -b "$BASE" -s base >/dev/null 2>&1 || true; done) &
READER_PID=$!
round "with searches" $((TXNS * 32))
