#!/usr/bin/env bash
# Benchmark (not a test): mailplan against a real slapd, side by side with the OpenLDAP tools.
#
#   plan:  `mailplan plan` reading both directories from slapd (paged) and planning, versus
#          `ldapsearch -E pr=N` reading the same entries (both bases at once, as mailplan does)
#   apply: `mailplan apply` of the saved plan (preconditions, backups, parallelism 10), versus
#          `ldapmodify -f` applying exactly the same changes from one LDIF file, on the same
#          starting data (the database is copied before the first and put back for the second)
#
# Usage: scripts/bench-ldap.sh [PERSONS] [DESTINATION_OBJECTS]   (default 100000 300000)
# Environment: PARALLELISM (10), PAGE_SIZE (1000), RUNS (3: how many times each reader and each
# applier runs, taking turns), PLAN_WRAPPER and APPLY_WRAPPER (a command to run plan or apply under, e.g. a
# profiler).
# Needs: slapd, ldap-utils (apt-get install slapd ldap-utils). Runs slapd on a free loopback port
# from a temporary folder and stops it by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${1:-100000}
OBJECTS=${2:-300000}
PARALLELISM=${PARALLELISM:-10}
RUNS=${RUNS:-3}
PAGE=${PAGE_SIZE:-1000}
PW='bench-secret'
SRC='O=Acme'
DST='DC=acme,DC=test'

for b in slapd slapadd ldapsearch ldapmodify; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || {
    echo "$b is missing: apt-get install slapd ldap-utils" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"

cargo build --release --quiet --bin mailplan --example plan_to_ldif
MP=$PWD/target/release/mailplan
TO_LDIF=$PWD/target/release/examples/plan_to_ldif
SCHEMA=$PWD/tests/fixtures/ldap/schema.ldif

W=$(mktemp -d /tmp/mailplan-bench.XXXXXX)
. scripts/slapd-lib.sh
trap 'stop_slapd; rm -rf "$W"' EXIT
now() { date +%s.%N; }
# CPU seconds (user + system) slapd has used so far: how busy the server was during a step.
slapd_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$SLAPD_PID/stat"; }
secs() { echo "$2 - $1" | bc; }

echo "== generating $PERSONS persons, $OBJECTS destination objects"
"$MP" generate --persons "$PERSONS" --destination-objects "$OBJECTS" --seed 42 --out "$W/data" >/dev/null

# slapadd takes entry records only, and OpenLDAP's `person` requires `sn` (AD's does not).
loadable() {
  awk 'BEGIN { RS = ""; ORS = "\n\n" }
       { out = ""; person = 0; sn = 0; cn = "";
         n = split($0, L, "\n");
         for (i = 1; i <= n; i++) {
           if (L[i] ~ /^#/ || L[i] ~ /^version:/) continue;
           if (tolower(L[i]) == "objectclass: person") person = 1;
           if (L[i] ~ /^sn::? /) sn = 1;
           if (cn == "" && L[i] ~ /^cn::? /) cn = L[i];
           out = out L[i] "\n";
         }
         if (person && !sn && cn != "") out = out "sn" substr(cn, 3) "\n";
         sub(/\n$/, "", out);
         if (out != "") print out }' "$1"
}

PORT=$(free_port)
URL="ldap://127.0.0.1:$PORT"
mkdir -p "$W/slapd.d" "$W/db0" "$W/db1"
{
  slapd_config_head /etc/ldap/schema/core.ldif /etc/ldap/schema/cosine.ldif \
    /etc/ldap/schema/inetorgperson.ldif "$SCHEMA"
  cat <<CONF
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: size.soft=500 size.hard=500 size.pr=unlimited size.prtotal=unlimited

CONF
  slapd_config_database
  slapd_mdb_database 1 "$SRC" "$PW" "$W/db0"
  slapd_mdb_database 2 "$DST" "$PW" "$W/db1"
} > "$W/config.ldif"
slapadd -n0 -F "$W/slapd.d" -l "$W/config.ldif"
echo "== loading slapd"
loadable "$W/data/source.ldif" > "$W/source.load.ldif"
loadable "$W/data/destination.ldif" > "$W/destination.load.ldif"
slapadd -q -F "$W/slapd.d" -b "$SRC" -l "$W/source.load.ldif"
slapadd -q -F "$W/slapd.d" -b "$DST" -l "$W/destination.load.ldif"

start_slapd

ldap_block() {
  printf '    ldap:\n      url: %s\n      bind_dn: "cn=admin,%s"\n      password: { env: BENCH_LDAP_PASSWORD }\n      base: "%s"\n      page_size: %s\n' "$URL" "$1" "$1" "$PAGE"
}
export BENCH_LDAP_PASSWORD=$PW
python3 - "$W/data/plan.yaml" "$W/plan.yaml" "$(ldap_block "$SRC")" "$(ldap_block "$DST")" <<'PY'
import sys
text = open(sys.argv[1]).read()
text = text.replace("    ldif: source.ldif\n", sys.argv[3] + "\n").replace("    ldif: destination.ldif\n", sys.argv[4] + "\n")
open(sys.argv[2], "w").write(text)
PY

read_both() {
  ldapsearch -x -LLL -H "$URL" -D "cn=admin,$SRC" -w "$PW" -b "$SRC" -E "pr=$PAGE/noprompt" '(objectClass=*)' '*' >"$W/read-src.ldif" &
  local a=$!
  ldapsearch -x -LLL -H "$URL" -D "cn=admin,$DST" -w "$PW" -b "$DST" -E "pr=$PAGE/noprompt" '(objectClass=*)' '*' >"$W/read-dst.ldif"
  wait $a
}
echo "== reading with ldapsearch (warm-up)"
read_both
# The reader and the planner take turns too, RUNS times: one run of each varies by a second
# or more on this machine.
LDAPSEARCHES=(); PLANS=(); LDAPSEARCH_SLAPDS=(); PLAN_SLAPDS=()
for run in $(seq 1 "$RUNS"); do
  echo "== ldapsearch, then mailplan plan (run $run)"
  c0=$(slapd_cpu); t0=$(now); read_both; t1=$(now); c1=$(slapd_cpu)
  LDAPSEARCHES+=("$(secs "$t0" "$t1")"); LDAPSEARCH_SLAPDS+=("$(secs "$c0" "$c1")")
  c0=$(slapd_cpu); t0=$(now); ${PLAN_WRAPPER:-} "$MP" plan "$W/plan.yaml" >/dev/null; t1=$(now); c1=$(slapd_cpu)
  PLANS+=("$(secs "$t0" "$t1")"); PLAN_SLAPDS+=("$(secs "$c0" "$c1")")
done
ENTRIES=$(grep -c '^dn:' "$W/read-src.ldif" "$W/read-dst.ldif" | awk -F: '{s+=$2} END {print s}')

# The saved plan for apply (not timed: writing a reviewable file of every change is extra work
# ldapsearch does not do).
t0=$(now); "$MP" plan "$W/plan.yaml" --out "$W/saved.json" >/dev/null; t1=$(now)
SAVE=$(secs "$t0" "$t1")
"$TO_LDIF" "$W/saved.json" > "$W/changes.ldif"
OPS=$(grep -c '^changetype:' "$W/changes.ldif")

# The same starting data for every apply: the database as planned is kept aside and put back
# before each one. The appliers take turns (ldapmodify, then mailplan, RUNS times), because
# this machine's disk and CPU vary from minute to minute: only neighbouring runs compare.
stop_slapd
cp -a "$W/db1" "$W/db1.planned"
fresh_start() {
  stop_slapd
  rm -rf "$W/db1"; cp -a "$W/db1.planned" "$W/db1"
  start_slapd
}
APPLIES=(); LDAPMODIFIES=(); APPLY_SLAPDS=(); LDAPMODIFY_SLAPDS=()
for run in $(seq 1 "$RUNS"); do
  fresh_start
  echo "== ldapmodify -f (run $run)"
  c0=$(slapd_cpu); t0=$(now); ldapmodify -x -H "$URL" -D "cn=admin,$DST" -w "$PW" -f "$W/changes.ldif" >/dev/null; t1=$(now); c1=$(slapd_cpu)
  LDAPMODIFIES+=("$(secs "$t0" "$t1")"); LDAPMODIFY_SLAPDS+=("$(secs "$c0" "$c1")")
  fresh_start
  echo "== mailplan apply (parallelism $PARALLELISM, run $run)"
  # APPLY_WRAPPER runs apply under a profiler, e.g. APPLY_WRAPPER="strace -f -c -e trace=fsync,fdatasync".
  c0=$(slapd_cpu); t0=$(now)
  ${APPLY_WRAPPER:-} "$MP" apply "$W/saved.json" --parallelism "$PARALLELISM" --state-dir "$W/state.$run" >/dev/null 2>"$W/apply.log" || { tail -20 "$W/apply.log"; exit 1; }
  t1=$(now); c1=$(slapd_cpu)
  APPLIES+=("$(secs "$t0" "$t1")"); APPLY_SLAPDS+=("$(secs "$c0" "$c1")")
done

printf '\n%s persons, %s destination objects; %s entries read; %s directory changes\n' "$PERSONS" "$OBJECTS" "$ENTRIES" "$OPS"
printf '| step | mailplan | OpenLDAP tool | ratio |\n|---|---|---|---|\n'
for i in "${!PLANS[@]}"; do
  printf '| read + plan (page %s), run %s | %.2f s (plan) | %.2f s (ldapsearch, both bases) | %.2f |\n' "$PAGE" "$((i + 1))" "${PLANS[$i]}" "${LDAPSEARCHES[$i]}" "$(echo "${PLANS[$i]} / ${LDAPSEARCHES[$i]}" | bc -l)"
done
for i in "${!APPLIES[@]}"; do
  printf '| apply %s changes, run %s | %.2f s (apply, parallelism %s) | %.2f s (ldapmodify -f) | %.2f |\n' "$OPS" "$((i + 1))" "${APPLIES[$i]}" "$PARALLELISM" "${LDAPMODIFIES[$i]}" "$(echo "${APPLIES[$i]} / ${LDAPMODIFIES[$i]}" | bc -l)"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ "$RUNS" -gt 1 ]; then
  mp=$(median "${PLANS[@]}"); tool=$(median "${LDAPSEARCHES[@]}")
  printf '| read + plan, median of %s | %.2f s | %.2f s | %.2f |\n' "$RUNS" "$mp" "$tool" "$(echo "$mp / $tool" | bc -l)"
  mp=$(median "${APPLIES[@]}"); tool=$(median "${LDAPMODIFIES[@]}")
  printf '| apply, median of %s | %.2f s | %.2f s | %.2f |\n' "$RUNS" "$mp" "$tool" "$(echo "$mp / $tool" | bc -l)"
fi
printf 'plan --out (the saved plan for apply, not compared): %.2f s\n' "$SAVE"
printf 'slapd CPU seconds: ldapsearch %s, plan %s, apply %s, ldapmodify %s\n' "${LDAPSEARCH_SLAPDS[*]}" "${PLAN_SLAPDS[*]}" "${APPLY_SLAPDS[*]}" "${LDAPMODIFY_SLAPDS[*]}"
