# Sourced by the scripts that run a throwaway slapd (scripts/bench-ldap.sh,
# scripts/slapd-txn-crash.sh): the parts of its set-up they share. Not run on its own.
#
# The caller sets W (its temporary folder, holding slapd.d/, slapd.pid and slapd.log) and URL,
# and calls stop_slapd on exit. slapd is only ever stopped by the PID this file started.

SLAPD_PID=""

# A free loopback port.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The start of a cn=config LDIF: global settings, back-mdb, and the schemas given as LDIF files
# (core.ldif first). The caller appends the frontend, if it sets one, then slapd_config_database,
# then its own databases: slapadd wants them in that order.
slapd_config_head() {
  printf 'dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: %s/slapd.pid\n' "$W"
  printf 'olcLogLevel: none\nolcThreads: 8\n\n'
  printf 'dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n'
  printf 'olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n'
  printf 'dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n'
  local schema
  for schema in "$@"; do
    printf 'include: file://%s\n\n' "$schema"
  done
}

# The config database's entry.
slapd_config_database() {
  printf 'dn: olcDatabase={0}config,cn=config\nobjectClass: olcDatabaseConfig\n'
  printf 'olcDatabase: {0}config\n\n'
}

# A back-mdb database: slapd_mdb_database INDEX SUFFIX PASSWORD FOLDER. Its root DN is
# cn=admin,SUFFIX; it may grow to 8 GiB and indexes objectClass.
slapd_mdb_database() {
  printf 'dn: olcDatabase={%s}mdb,cn=config\nobjectClass: olcDatabaseConfig\n' "$1"
  printf 'objectClass: olcMdbConfig\nolcDatabase: {%s}mdb\nolcSuffix: %s\n' "$1" "$2"
  printf 'olcRootDN: cn=admin,%s\nolcRootPW: %s\nolcDbDirectory: %s\n' "$2" "$3" "$4"
  printf 'olcDbMaxSize: 8589934592\nolcDbIndex: objectClass eq\n\n'
}

# Starts slapd from $W/slapd.d on $URL and waits until it answers.
start_slapd() {
  slapd -F "$W/slapd.d" -h "$URL/" -d 0 >"$W/slapd.log" 2>&1 &
  SLAPD_PID=$!
  for _ in $(seq 1 100); do
    ldapsearch -x -H "$URL" -b "" -s base >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "slapd did not start" >&2
  cat "$W/slapd.log" >&2
  exit 1
}

# Stops the slapd start_slapd started, if it still runs, and waits for it to end.
stop_slapd() {
  if [ -n "$SLAPD_PID" ]; then
    kill "$SLAPD_PID" 2>/dev/null || true
    while kill -0 "$SLAPD_PID" 2>/dev/null; do sleep 0.1; done
    SLAPD_PID=""
  fi
}
