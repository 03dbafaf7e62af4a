//! The PostgreSQL backend: the state in a database that every machine working on a wave shares
//! (`state: postgres:` in the plan file), with the tables of the SQLite backend and the same
//! promises: a call that returns has committed (PostgreSQL syncs a commit before it answers),
//! every item is in the ledger once, a backup is stored before its entry is touched.
//!
//! The lock is a PostgreSQL advisory lock per plan and destination (the lock's *scope*, see
//! [`Target::scope`]), held by a connection of its own: the server releases it when that
//! connection ends, so the lock of a process killed with -9 is free as soon as its socket closes.
//! A row in `locks` names the holder for messages.
//!
//! The client is asynchronous (tokio-postgres) while the state's interface is synchronous and is
//! called from inside the importer's tokio tasks: every query runs on one small runtime of this
//! module's own, and the caller waits on a plain channel for its answer (blocking its thread as
//! a SQLite call does, never entering a runtime from inside another). Every call has a
//! deadline. This module must not take the password from anywhere but the plan's secret, nor
//! show it: messages name the database by its URL without one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::Digest as _;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use super::backend::{Backend, GroupStep, HeldLock};
use super::caps::{CapRow, SharedCaps, Taken};
use super::units::{AfterFailure, ClaimedUnit, NewUnit, Renewal, UnitRow, WaveRow, WorkUnits};
use super::{
    ActionRecord, ActionStatus, AfterImage, Backup, History, ItemVersion, LedgerItem, LockHolder,
    PendingMerge, Run, RunId, RunOutcome, StateError, dn_key, host, time, to_i64, to_u64,
};

/// The longest one query may take, its answer included. State queries are small; one that
/// takes this long is stuck (a lost network, a server that stopped answering).
const QUERY_DEADLINE: Duration = Duration::from_secs(60);
/// The longest a connection (TCP, TLS and login) may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(15);

/// The migrations, in order; the schema version is how many of them have been applied. As in
/// SQLite: migrations only ever add.
const MIGRATIONS: &[&str] = &[
    // 1: the tables of the SQLite state's migrations 1 to 3, and the locks per scope.
    "
    CREATE TABLE runs (
        id               BIGSERIAL PRIMARY KEY,
        plan_file        TEXT NOT NULL,
        plan_fingerprint TEXT NOT NULL,
        started_at       TEXT NOT NULL,
        ended_at         TEXT,
        outcome          TEXT NOT NULL
            CHECK (outcome IN ('running', 'succeeded', 'failed', 'interrupted')),
        applied          BIGINT NOT NULL DEFAULT 0,
        failed           BIGINT NOT NULL DEFAULT 0,
        skipped          BIGINT NOT NULL DEFAULT 0,
        scope            TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_by_fingerprint ON runs (plan_fingerprint);
    CREATE TABLE actions (
        seq         BIGSERIAL PRIMARY KEY,
        run         BIGINT NOT NULL REFERENCES runs (id),
        action_id   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        target      TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('applied', 'failed', 'skipped', 'stale')),
        error       TEXT,
        started_at  TEXT NOT NULL,
        ended_at    TEXT NOT NULL,
        duration_ms BIGINT NOT NULL
    );
    CREATE INDEX actions_by_run ON actions (run, seq);
    CREATE INDEX actions_by_action_id ON actions (action_id, status);
    CREATE TABLE backups (
        id        BIGSERIAL PRIMARY KEY,
        run       BIGINT NOT NULL REFERENCES runs (id),
        action_id TEXT NOT NULL,
        dn        TEXT NOT NULL,
        dn_key    TEXT NOT NULL,
        ldif      TEXT NOT NULL,
        taken_at  TEXT NOT NULL
    );
    CREATE INDEX backups_by_dn ON backups (dn_key, id);
    CREATE TABLE ledger (
        id          BIGSERIAL PRIMARY KEY,
        run         BIGINT NOT NULL REFERENCES runs (id),
        mailbox     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        folder      TEXT,
        identity    TEXT NOT NULL,
        size        BIGINT,
        recorded_at TEXT NOT NULL,
        digest      TEXT,
        etag        TEXT,
        UNIQUE (mailbox, kind, identity)
    );
    CREATE TABLE links (
        source_key  TEXT PRIMARY KEY,
        source      TEXT NOT NULL,
        destination TEXT NOT NULL,
        run         BIGINT NOT NULL REFERENCES runs (id),
        action_id   TEXT NOT NULL,
        linked_at   TEXT NOT NULL
    );
    CREATE TABLE pending_merges (
        contact_key TEXT PRIMARY KEY,
        contact     TEXT NOT NULL,
        source_key  TEXT NOT NULL,
        source      TEXT NOT NULL,
        backup      BIGINT NOT NULL REFERENCES backups (id),
        merged_run  BIGINT REFERENCES runs (id)
    );
    CREATE INDEX pending_merges_by_source ON pending_merges (source_key);
    CREATE TABLE locks (
        scope      TEXT PRIMARY KEY,
        pid        BIGINT NOT NULL,
        host       TEXT NOT NULL,
        started_at TEXT NOT NULL,
        token      TEXT NOT NULL
    );
    ",
    // 2: item work as units that workers claim, each under a lease.
    "
    CREATE TABLE units (
        wave        TEXT NOT NULL,
        unit        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        subject     TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
        owner       TEXT,
        lease_until TIMESTAMPTZ,
        not_before  TIMESTAMPTZ NOT NULL DEFAULT now(),
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        copied      BIGINT NOT NULL DEFAULT 0,
        bytes       BIGINT NOT NULL DEFAULT 0,
        queued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        started_at  TIMESTAMPTZ,
        ended_at    TIMESTAMPTZ,
        PRIMARY KEY (wave, unit)
    );
    CREATE INDEX units_to_claim ON units (wave, state, not_before);
    ",
    // 3: the SQLite state's migration 4: after-images and undos.
    "
    CREATE TABLE after_images (
        id        BIGSERIAL PRIMARY KEY,
        run       BIGINT NOT NULL REFERENCES runs (id),
        action_id TEXT NOT NULL,
        dn        TEXT NOT NULL,
        dn_key    TEXT NOT NULL,
        ldif      TEXT,
        taken_at  TEXT NOT NULL
    );
    CREATE INDEX after_images_by_run ON after_images (run, id);
    CREATE TABLE undos (
        run        BIGINT PRIMARY KEY REFERENCES runs (id),
        undone_run BIGINT NOT NULL REFERENCES runs (id)
    );
    CREATE INDEX undos_by_undone_run ON undos (undone_run);
    ",
    // 4: connection caps per server endpoint, and the slots held against them.
    "
    CREATE TABLE caps (
        endpoint    TEXT PRIMARY KEY,
        connections INTEGER NOT NULL CHECK (connections > 0),
        set_by      TEXT NOT NULL,
        set_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        from_plan   INTEGER
    );
    CREATE TABLE slots (
        id          BIGSERIAL PRIMARY KEY,
        endpoint    TEXT NOT NULL,
        holder      TEXT NOT NULL,
        lease_until TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX slots_by_endpoint ON slots (endpoint, lease_until);
    CREATE INDEX slots_by_holder ON slots (holder);
    ",
    // 5: the source folder of a unit that copies one folder of a large mailbox (NULL for a
    // unit that copies a whole mailbox, calendar or address book).
    "ALTER TABLE units ADD COLUMN IF NOT EXISTS folder TEXT;",
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Serialises schema migrations between processes (a transaction-scoped advisory lock).
const MIGRATION_LOCK: i64 = 0x6d70_6c6e_0000_0001;

/// A PostgreSQL database to keep the state in, ready to connect to: the plan file's
/// `state: postgres:` with its password read.
pub struct Target {
    config: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// The URL without a password, for messages.
    shown: String,
    scope: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("shown", &self.shown)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The database the plan file names, with its password (already resolved from its secret)
    /// and TLS set up as for every other connection. TLS is required unless the URL says
    /// `sslmode=disable`. `scope` names the plan and destination the apply lock is taken for.
    pub fn new(
        spec: &crate::spec::PostgresState,
        password: Option<String>,
        scope: String,
    ) -> Result<Target, StateError> {
        let shown = spec.url.clone();
        let bad = |reason: String| StateError::Corrupt {
            path: PathBuf::from(&shown),
            reason,
        };
        let mut config: Config = spec
            .url
            .parse()
            .map_err(|e| bad(format!("the URL does not parse: {e}")))?;
        let explicit = url::Url::parse(&spec.url)
            .map(|u| u.query_pairs().any(|(k, _)| k == "sslmode"))
            .unwrap_or(false);
        if !explicit {
            config.ssl_mode(SslMode::Require);
        }
        if let Some(password) = password {
            config.password(password);
        }
        config
            .application_name("mailplan")
            .connect_timeout(CONNECT_DEADLINE)
            .tcp_user_timeout(QUERY_DEADLINE)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => {
                let client = crate::tls::client_config(spec.ca_file.as_deref(), spec.insecure)
                    .map_err(|e| StateError::Open {
                        path: PathBuf::from(&shown),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(
                    (*client).clone(),
                ))
            }
        };
        Ok(Target {
            config,
            tls,
            shown: show(&spec.url),
            scope,
        })
    }

    /// The database's URL without a password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// What the apply lock is taken for: the plan and its destination.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The advisory lock's key: the first 8 bytes of the scope's SHA-256.
    fn lock_key(&self) -> i64 {
        let digest = sha2::Sha256::digest(self.scope.as_bytes());
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(key)
    }

    async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(connection);
                Ok(client)
            }
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(connection);
                Ok(client)
            }
        }
    }
}

/// A URL as shown in messages: no password, no query.
fn show(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "the PostgreSQL state".to_owned(),
    }
}

/// The runtime every PostgreSQL call of this process runs on.
fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("state-postgres")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// Runs `future` on this module's runtime under `deadline` and waits for it on this thread.
fn block<T: Send + 'static>(
    place: &Path,
    context: &'static str,
    deadline: Duration,
    future: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
) -> Result<T, StateError> {
    let stopped = || StateError::WriterStopped {
        path: place.to_owned(),
    };
    let runtime = runtime().ok_or_else(stopped)?;
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let result = tokio::time::timeout(deadline, future).await;
        let _ = answer.send(result);
    });
    match answered.recv().map_err(|_| stopped())? {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(StateError::Postgres {
            path: place.to_owned(),
            context,
            source,
        }),
        Err(_) => Err(StateError::PostgresTimeout {
            path: place.to_owned(),
            context,
            after: deadline,
        }),
    }
}

/// One parameter of a query, owned: the query runs on another thread.
type Param = Box<dyn ToSql + Sync + Send>;

macro_rules! params {
    ($($p:expr),* $(,)?) => { vec![$(Box::new($p) as Param),*] };
}

/// Connects to `target` and brings its schema up to date (once per process and database).
fn connect(target: &Arc<Target>, migrate: bool) -> Result<(Arc<Client>, bool), StateError> {
    static MIGRATED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let place = PathBuf::from(target.shown());
    let t = target.clone();
    let client = block(
        &place,
        "connecting to the database",
        CONNECT_DEADLINE * 2,
        async move { t.connect().await },
    )?;
    let client = Arc::new(client);
    let done = MIGRATED.get_or_init(Default::default);
    let key = format!("{:?}", target.config);
    if done.lock().map(|d| d.contains(&key)).unwrap_or(false) {
        return Ok((client, true));
    }
    let c = client.clone();
    let version = block(
        &place,
        "reading the schema version",
        QUERY_DEADLINE,
        async move {
            let row = c
                .query_one(
                    "SELECT to_regclass('mailplan_schema') IS NOT NULL AS present",
                    &[],
                )
                .await?;
            if !row.try_get::<_, bool>(0)? {
                return Ok(None);
            }
            let row = c
                .query_one("SELECT max(version) FROM mailplan_schema", &[])
                .await?;
            Ok(Some(row.try_get::<_, Option<i32>>(0)?.unwrap_or(0)))
        },
    )?;
    match version {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StateError::Corrupt {
                path: place,
                reason: format!(
                    "it has schema version {v}, newer than the {SCHEMA_VERSION} this mailplan \
                     knows; use a newer mailplan"
                ),
            });
        }
        Some(v) if v == SCHEMA_VERSION => {}
        None if !migrate => return Ok((client, false)),
        _ => {
            let c = client.clone();
            block(&place, "migrating the schema", QUERY_DEADLINE, async move {
                c.batch_execute("BEGIN").await?;
                let applied = async {
                    c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                        .await?;
                    c.batch_execute(
                        "CREATE TABLE IF NOT EXISTS mailplan_schema (version INTEGER NOT NULL)",
                    )
                    .await?;
                    let row = c
                        .query_one("SELECT max(version) FROM mailplan_schema", &[])
                        .await?;
                    let from = row.try_get::<_, Option<i32>>(0)?.unwrap_or(0);
                    for (i, sql) in MIGRATIONS.iter().enumerate() {
                        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
                        if version <= from {
                            continue;
                        }
                        c.batch_execute(sql).await?;
                        c.execute(
                            "INSERT INTO mailplan_schema (version) VALUES ($1)",
                            &[&version],
                        )
                        .await?;
                    }
                    c.batch_execute("COMMIT").await
                }
                .await;
                if applied.is_err() {
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                applied
            })?;
        }
    }
    if let Ok(mut d) = done.lock() {
        d.insert(key);
    }
    Ok((client, true))
}

/// A connection to the state database.
pub(crate) struct Postgres {
    client: Arc<Client>,
    target: Arc<Target>,
    place: PathBuf,
    statements: Mutex<HashMap<&'static str, Statement>>,
    /// Whether a group transaction is open (see [`StateDb::write_together`]).
    in_group: std::sync::atomic::AtomicBool,
    /// Whether the connection may serve the next `open` once this one is dropped: no
    /// transaction left open, no call that failed or ran out of time (its statement may still
    /// be running on the server).
    reusable: std::sync::atomic::AtomicBool,
    /// A transaction begun and not yet committed or rolled back.
    in_transaction: std::sync::atomic::AtomicBool,
}

/// The most idle connections kept per database for the next `open` in this process.
const IDLE_PER_DATABASE: usize = 16;

/// A connection a dropped [`Postgres`] left for the next `open` of the same database, with its
/// prepared statements.
struct Idle {
    client: Arc<Client>,
    statements: HashMap<&'static str, Statement>,
}

/// The idle connections of this process, by database. Opening the state is frequent (every
/// import, every task of one, every read of the ledger): a new connection each time would cost
/// a TCP, TLS and SCRAM handshake, and as many backends on the server.
fn idle_connections() -> &'static Mutex<HashMap<String, Vec<Idle>>> {
    static IDLE: OnceLock<Mutex<HashMap<String, Vec<Idle>>>> = OnceLock::new();
    IDLE.get_or_init(Default::default)
}

/// The key a database's idle connections are kept under.
fn database_key(target: &Target) -> String {
    format!("{:?}", target.config)
}

/// An idle connection to `target` that is still open, if there is one.
fn take_idle(target: &Target) -> Option<Idle> {
    let mut idle = idle_connections().lock().ok()?;
    let list = idle.get_mut(&database_key(target))?;
    while let Some(one) = list.pop() {
        if !one.client.is_closed() {
            return Some(one);
        }
    }
    None
}

impl Drop for Postgres {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let clean = self.reusable.load(Ordering::Relaxed)
            && !self.in_transaction.load(Ordering::Relaxed)
            && !self.in_group.load(Ordering::Relaxed)
            && !self.client.is_closed();
        if !clean {
            return;
        }
        let statements = self
            .statements
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        if let Ok(mut idle) = idle_connections().lock() {
            let list = idle.entry(database_key(&self.target)).or_default();
            if list.len() < IDLE_PER_DATABASE {
                list.push(Idle {
                    client: self.client.clone(),
                    statements,
                });
            }
        }
    }
}

impl Postgres {
    /// Connects (or takes an idle connection of this process), creating or migrating the
    /// tables.
    pub fn open(target: Arc<Target>) -> Result<Postgres, StateError> {
        if let Some(idle) = take_idle(&target) {
            return Ok(Postgres::with(idle.client, target, idle.statements));
        }
        let (client, _) = connect(&target, true)?;
        Ok(Postgres::with(client, target, HashMap::new()))
    }

    /// Connects when the database holds a mailplan state; `None` when it has none yet.
    pub fn open_existing(target: Arc<Target>) -> Result<Option<Postgres>, StateError> {
        // An idle connection was opened on a database that held the state.
        if let Some(idle) = take_idle(&target) {
            return Ok(Some(Postgres::with(idle.client, target, idle.statements)));
        }
        let (client, present) = connect(&target, false)?;
        Ok(present.then(|| Postgres::with(client, target, HashMap::new())))
    }

    fn with(
        client: Arc<Client>,
        target: Arc<Target>,
        statements: HashMap<&'static str, Statement>,
    ) -> Postgres {
        Postgres {
            client,
            place: PathBuf::from(target.shown()),
            target,
            statements: Mutex::new(statements),
            in_group: Default::default(),
            reusable: std::sync::atomic::AtomicBool::new(true),
            in_transaction: Default::default(),
        }
    }

    /// Notes a failed call: its connection is not handed on.
    fn note<T>(&self, result: Result<T, StateError>) -> Result<T, StateError> {
        if result.is_err() {
            self.reusable
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    /// The prepared statement for `sql` (prepared once per connection).
    fn statement(&self, context: &'static str, sql: &'static str) -> Result<Statement, StateError> {
        if let Some(s) = self
            .statements
            .lock()
            .ok()
            .and_then(|m| m.get(sql).cloned())
        {
            return Ok(s);
        }
        let client = self.client.clone();
        let stmt = self.note(block(&self.place, context, QUERY_DEADLINE, async move {
            client.prepare(sql).await
        }))?;
        if let Ok(mut m) = self.statements.lock() {
            m.insert(sql, stmt.clone());
        }
        Ok(stmt)
    }

    fn query(
        &self,
        context: &'static str,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, StateError> {
        let stmt = self.statement(context, sql)?;
        let client = self.client.clone();
        self.note(block(&self.place, context, QUERY_DEADLINE, async move {
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
            client.query(&stmt, &refs).await
        }))
    }

    fn execute(
        &self,
        context: &'static str,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<u64, StateError> {
        let stmt = self.statement(context, sql)?;
        let client = self.client.clone();
        self.note(block(&self.place, context, QUERY_DEADLINE, async move {
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
            client.execute(&stmt, &refs).await
        }))
    }

    fn batch(&self, context: &'static str, sql: &'static str) -> Result<(), StateError> {
        use std::sync::atomic::Ordering;
        if sql == "BEGIN" {
            self.in_transaction.store(true, Ordering::Relaxed);
        }
        let client = self.client.clone();
        let done = self.note(block(&self.place, context, QUERY_DEADLINE, async move {
            client.batch_execute(sql).await
        }));
        if done.is_ok() && matches!(sql, "COMMIT" | "ROLLBACK") {
            self.in_transaction.store(false, Ordering::Relaxed);
        }
        done
    }

    /// A value of a row, or a state error naming what was read.
    fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
        &self,
        row: &'r Row,
        i: usize,
        context: &'static str,
    ) -> Result<T, StateError> {
        row.try_get(i).map_err(|source| StateError::Postgres {
            path: self.place.clone(),
            context,
            source,
        })
    }

    fn corrupt(&self, reason: String) -> StateError {
        StateError::Corrupt {
            path: self.place.clone(),
            reason,
        }
    }

    fn run_from(&self, r: &Row) -> Result<Run, StateError> {
        const C: &str = "reading a run";
        let outcome: String = self.get(r, 5, C)?;
        Ok(Run {
            id: self.get(r, 0, C)?,
            plan_file: self.get(r, 1, C)?,
            plan_fingerprint: self.get(r, 2, C)?,
            started_at: self.get(r, 3, C)?,
            ended_at: self.get(r, 4, C)?,
            outcome: RunOutcome::parse(&outcome)
                .ok_or_else(|| self.corrupt(format!("unknown run outcome `{outcome}`")))?,
            applied: to_u64(self.get(r, 6, C)?),
            failed: to_u64(self.get(r, 7, C)?),
            skipped: to_u64(self.get(r, 8, C)?),
        })
    }

    fn backup_from(&self, r: &Row) -> Result<Backup, StateError> {
        const C: &str = "reading a backup";
        Ok(Backup {
            id: self.get(r, 0, C)?,
            run: self.get(r, 1, C)?,
            action_id: self.get(r, 2, C)?,
            dn: self.get(r, 3, C)?,
            ldif: self.get(r, 4, C)?,
            taken_at: self.get(r, 5, C)?,
        })
    }

    fn read_holder(&self, client: &Arc<Client>) -> Result<Option<LockHolder>, StateError> {
        const C: &str = "reading the lock";
        let (client, scope, key) = (
            client.clone(),
            self.target.scope.clone(),
            self.target.lock_key(),
        );
        let rows = block(&self.place, C, QUERY_DEADLINE, async move {
            client
                .query(
                    "SELECT pid, host, started_at FROM locks WHERE scope = $1 AND EXISTS ( \
                     SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     AND classid::bigint = $2 AND objid::bigint = $3 AND objsubid = 1)",
                    &[&scope, &high(key), &low(key)],
                )
                .await
        })?;
        rows.first()
            .map(|r| {
                Ok(LockHolder {
                    pid: u32::try_from(self.get::<i64>(r, 0, C)?).unwrap_or(0),
                    host: self.get(r, 1, C)?,
                    started_at: self.get(r, 2, C)?,
                })
            })
            .transpose()
    }
}

/// The two halves of an advisory lock's key as `pg_locks` shows them.
fn high(key: i64) -> i64 {
    i64::from((key >> 32) as u32)
}

fn low(key: i64) -> i64 {
    i64::from(key as u32)
}

use super::COUNTS;

impl Backend for Postgres {
    fn path(&self) -> &Path {
        &self.place
    }

    fn lock(&self) -> Result<Box<dyn HeldLock>, StateError> {
        let (client, _) = connect(&self.target, true)?;
        let key = self.target.lock_key();
        let c = client.clone();
        let got = block(&self.place, "taking the lock", QUERY_DEADLINE, async move {
            let row = c
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await?;
            row.try_get::<_, bool>(0)
        })?;
        if !got {
            let holder = self.read_holder(&client)?.unwrap_or(LockHolder {
                pid: 0,
                host: "another host".to_owned(),
                started_at: "a moment ago".to_owned(),
            });
            return Err(StateError::Locked {
                path: PathBuf::from(format!("{} ({})", self.target.shown, self.target.scope)),
                holder,
            });
        }
        let token = format!(
            "{}@{}#{}",
            std::process::id(),
            host::hostname(),
            time::unix_seconds(std::time::SystemTime::now())
        );
        let (c, scope, t) = (client.clone(), self.target.scope.clone(), token.clone());
        let started_at = time::now();
        block(
            &self.place,
            "recording the lock",
            QUERY_DEADLINE,
            async move {
                c.batch_execute("BEGIN").await?;
                let done = async {
                    c.execute(
                        "INSERT INTO locks (scope, pid, host, started_at, token) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope) DO UPDATE SET \
                     pid = excluded.pid, host = excluded.host, \
                     started_at = excluded.started_at, token = excluded.token",
                        &[
                            &scope,
                            &i64::from(std::process::id()),
                            &host::hostname(),
                            &started_at,
                            &t,
                        ],
                    )
                    .await?;
                    c.execute(
                        &format!(
                            "UPDATE runs SET outcome = 'interrupted', ended_at = $1, {COUNTS} \
                         WHERE outcome = 'running' AND scope = $2"
                        ),
                        &[&started_at, &scope],
                    )
                    .await?;
                    c.batch_execute("COMMIT").await
                }
                .await;
                if done.is_err() {
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                done
            },
        )?;
        Ok(Box::new(PgLock {
            client: Some(client),
            place: self.place.clone(),
            key,
            token,
        }))
    }

    fn units(&self) -> Option<&dyn WorkUnits> {
        Some(self)
    }

    fn caps(&self) -> Option<&dyn SharedCaps> {
        Some(self)
    }

    fn group(&self, step: GroupStep) -> Result<(), StateError> {
        use std::sync::atomic::Ordering;
        const C: &str = "writing a group of records in one transaction";
        match step {
            GroupStep::Begin => {
                self.batch(C, "BEGIN")?;
                self.in_group.store(true, Ordering::Relaxed);
                Ok(())
            }
            GroupStep::Savepoint => self.batch(C, "SAVEPOINT one_write"),
            GroupStep::RollbackToSavepoint => self.batch(C, "ROLLBACK TO SAVEPOINT one_write"),
            GroupStep::ReleaseSavepoint => self.batch(C, "RELEASE SAVEPOINT one_write"),
            GroupStep::Commit => {
                self.in_group.store(false, Ordering::Relaxed);
                self.batch(C, "COMMIT")
            }
            GroupStep::Rollback => {
                self.in_group.store(false, Ordering::Relaxed);
                self.batch(C, "ROLLBACK")
            }
        }
    }

    fn lock_holder(&self) -> Result<Option<LockHolder>, StateError> {
        self.read_holder(&self.client)
    }

    fn force_unlock(&self) -> Result<(), StateError> {
        let key = self.target.lock_key();
        self.query(
            "removing the lock",
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
            params![high(key), low(key)],
        )?;
        self.execute(
            "removing the lock",
            "DELETE FROM locks WHERE scope = $1",
            params![self.target.scope.clone()],
        )
        .map(drop)
    }

    fn begin_run(&self, plan_file: &str, plan_fingerprint: &str) -> Result<RunId, StateError> {
        const C: &str = "recording the start of a run";
        let rows = self.query(
            C,
            "INSERT INTO runs (plan_file, plan_fingerprint, started_at, outcome, scope) \
             VALUES ($1, $2, $3, 'running', $4) RETURNING id",
            params![
                plan_file.to_owned(),
                plan_fingerprint.to_owned(),
                time::now(),
                self.target.scope.clone()
            ],
        )?;
        match rows.first() {
            Some(r) => self.get(r, 0, C),
            None => Err(self.corrupt("a new run got no id".into())),
        }
    }

    fn finish_run(&self, run: RunId, outcome: RunOutcome) -> Result<(), StateError> {
        const SQL: &str = const_format_counts::FINISH;
        let changed = self.execute(
            "recording the end of a run",
            SQL,
            params![run, outcome.as_str(), time::now()],
        )?;
        if changed == 0 {
            return Err(self.corrupt(format!("there is no run {run} to finish")));
        }
        Ok(())
    }

    fn record_action(&self, rec: &ActionRecord) -> Result<(), StateError> {
        self.execute(
            "recording an action",
            "INSERT INTO actions (run, action_id, kind, target, status, error, started_at, \
             ended_at, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            params![
                rec.run,
                rec.action_id.clone(),
                rec.kind.clone(),
                rec.target.clone(),
                rec.status.as_str(),
                rec.error.clone(),
                rec.started_at.clone(),
                rec.ended_at.clone(),
                to_i64(rec.duration_ms)
            ],
        )
        .map(drop)
    }

    fn backup(&self, run: RunId, action_id: &str, dn: &str, ldif: &str) -> Result<i64, StateError> {
        const C: &str = "storing a backup";
        let rows = self.query(
            C,
            "INSERT INTO backups (run, action_id, dn, dn_key, ldif, taken_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            params![
                run,
                action_id.to_owned(),
                dn.to_owned(),
                dn_key(dn),
                ldif.to_owned(),
                time::now()
            ],
        )?;
        match rows.first() {
            Some(r) => self.get(r, 0, C),
            None => Err(self.corrupt("a new backup got no id".into())),
        }
    }

    fn link(
        &self,
        run: RunId,
        action_id: &str,
        source: &str,
        destination: &str,
    ) -> Result<(), StateError> {
        self.execute(
            "recording a link",
            "INSERT INTO links (source_key, source, destination, run, action_id, linked_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (source_key) DO UPDATE SET destination = excluded.destination, \
             run = excluded.run, action_id = excluded.action_id, linked_at = excluded.linked_at",
            params![
                dn_key(source),
                source.to_owned(),
                destination.to_owned(),
                run,
                action_id.to_owned(),
                time::now()
            ],
        )
        .map(drop)
    }

    fn unlink(&self, run: RunId, action_id: &str) -> Result<(), StateError> {
        self.execute(
            "forgetting a link",
            "DELETE FROM links WHERE run = $1 AND action_id = $2",
            params![run, action_id.to_owned()],
        )
        .map(drop)
    }

    fn backup_contact(
        &self,
        run: RunId,
        action_id: &str,
        contact: &str,
        ldif: &str,
        source: &str,
    ) -> Result<i64, StateError> {
        use std::sync::atomic::Ordering;
        const C: &str = "backing up a contact";
        // Inside a group, its transaction (and the savepoint around this write) keeps the two
        // rows together; alone, a transaction of its own does.
        let own = !self.in_group.load(Ordering::Relaxed);
        if own {
            self.batch(C, "BEGIN")?;
        }
        let done = (|| {
            let id = self.backup(run, action_id, contact, ldif)?;
            self.execute(
                "noting a pending merge",
                "INSERT INTO pending_merges (contact_key, contact, source_key, source, backup) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (contact_key) DO UPDATE SET source_key = excluded.source_key, \
                 source = excluded.source, backup = excluded.backup, merged_run = NULL",
                params![
                    dn_key(contact),
                    contact.to_owned(),
                    dn_key(source),
                    source.to_owned(),
                    id
                ],
            )?;
            Ok(id)
        })();
        if own {
            match &done {
                Ok(_) => self.batch(C, "COMMIT")?,
                Err(_) => {
                    let _ = self.batch(C, "ROLLBACK");
                }
            }
        }
        done
    }

    fn merged(&self, run: RunId, source: &str) -> Result<(), StateError> {
        self.execute(
            "recording a finished merge",
            "UPDATE pending_merges SET merged_run = $1 \
             WHERE source_key = $2 AND merged_run IS NULL",
            params![run, dn_key(source)],
        )
        .map(drop)
    }

    fn history(&self) -> Result<History, StateError> {
        const L: &str = "reading links";
        const P: &str = "reading pending merges";
        let mut links = Vec::new();
        for r in self.query(
            L,
            "SELECT source, destination FROM links ORDER BY source_key",
            params![],
        )? {
            links.push((self.get(&r, 0, L)?, self.get(&r, 1, L)?));
        }
        let mut pending = Vec::new();
        for r in self.query(
            P,
            "SELECT p.source, p.contact, b.ldif FROM pending_merges p \
             JOIN backups b ON b.id = p.backup \
             WHERE p.merged_run IS NULL ORDER BY p.source_key, p.contact_key",
            params![],
        )? {
            pending.push(PendingMerge {
                source: self.get(&r, 0, P)?,
                contact: self.get(&r, 1, P)?,
                ldif: self.get(&r, 2, P)?,
            });
        }
        Ok(History { links, pending })
    }

    fn runs(&self) -> Result<Vec<Run>, StateError> {
        const SQL: &str = const_format_counts::RUNS;
        self.query("listing runs", SQL, params![])?
            .iter()
            .map(|r| self.run_from(r))
            .collect()
    }

    fn run(&self, run: RunId) -> Result<Option<Run>, StateError> {
        const SQL: &str = const_format_counts::RUN;
        self.query("reading a run", SQL, params![run])?
            .first()
            .map(|r| self.run_from(r))
            .transpose()
    }

    fn run_actions(&self, run: RunId) -> Result<Vec<ActionRecord>, StateError> {
        const C: &str = "listing the actions of a run";
        self.query(
            C,
            "SELECT run, action_id, kind, target, status, error, started_at, ended_at, \
             duration_ms FROM actions WHERE run = $1 ORDER BY seq",
            params![run],
        )?
        .iter()
        .map(|r| {
            let status: String = self.get(r, 4, C)?;
            Ok(ActionRecord {
                run: self.get(r, 0, C)?,
                action_id: self.get(r, 1, C)?,
                kind: self.get(r, 2, C)?,
                target: self.get(r, 3, C)?,
                status: ActionStatus::parse(&status)
                    .ok_or_else(|| self.corrupt(format!("unknown action status `{status}`")))?,
                error: self.get(r, 5, C)?,
                started_at: self.get(r, 6, C)?,
                ended_at: self.get(r, 7, C)?,
                duration_ms: to_u64(self.get(r, 8, C)?),
            })
        })
        .collect()
    }

    fn backups(&self, dn: Option<&str>) -> Result<Vec<Backup>, StateError> {
        self.query(
            "listing backups",
            "SELECT id, run, action_id, dn, ldif, taken_at FROM backups \
             WHERE $1::text IS NULL OR dn_key = $1 ORDER BY id DESC",
            params![dn.map(dn_key)],
        )?
        .iter()
        .map(|r| self.backup_from(r))
        .collect()
    }

    fn after_image(
        &self,
        run: RunId,
        action_id: &str,
        dn: &str,
        ldif: Option<&str>,
    ) -> Result<(), StateError> {
        self.execute(
            "storing an after-image",
            "INSERT INTO after_images (run, action_id, dn, dn_key, ldif, taken_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            params![
                run,
                action_id.to_owned(),
                dn.to_owned(),
                dn_key(dn),
                ldif.map(str::to_owned),
                time::now()
            ],
        )
        .map(drop)
    }

    fn after_images(&self, run: RunId) -> Result<Vec<AfterImage>, StateError> {
        const C: &str = "listing after-images";
        self.query(
            C,
            "SELECT run, action_id, dn, ldif FROM after_images WHERE run = $1 ORDER BY id",
            params![run],
        )?
        .iter()
        .map(|r| {
            Ok(AfterImage {
                run: self.get(r, 0, C)?,
                action_id: self.get(r, 1, C)?,
                dn: self.get(r, 2, C)?,
                ldif: self.get(r, 3, C)?,
            })
        })
        .collect()
    }

    fn record_undo(&self, run: RunId, undone_run: RunId) -> Result<(), StateError> {
        self.execute(
            "recording an undo",
            "INSERT INTO undos (run, undone_run) VALUES ($1, $2)",
            params![run, undone_run],
        )
        .map(drop)
    }

    fn undone_by(&self, run: RunId) -> Result<Vec<RunId>, StateError> {
        const C: &str = "listing the undos of a run";
        self.query(
            C,
            "SELECT run FROM undos WHERE undone_run = $1 ORDER BY run",
            params![run],
        )?
        .iter()
        .map(|r| self.get(r, 0, C))
        .collect()
    }

    fn latest_backup(&self, dn: &str) -> Result<Option<Backup>, StateError> {
        self.query(
            "reading a backup",
            "SELECT id, run, action_id, dn, ldif, taken_at FROM backups WHERE dn_key = $1 \
             ORDER BY id DESC LIMIT 1",
            params![dn_key(dn)],
        )?
        .first()
        .map(|r| self.backup_from(r))
        .transpose()
    }

    fn has_runs_of(&self, plan_fingerprint: &str) -> Result<bool, StateError> {
        const C: &str = "looking up earlier runs";
        let rows = self.query(
            C,
            "SELECT EXISTS (SELECT 1 FROM runs WHERE plan_fingerprint = $1)",
            params![plan_fingerprint.to_owned()],
        )?;
        rows.first().map_or(Ok(false), |r| self.get(r, 0, C))
    }

    fn applied_actions(&self, plan_fingerprint: &str) -> Result<BTreeSet<String>, StateError> {
        const C: &str = "looking up applied actions";
        self.query(
            C,
            "SELECT DISTINCT a.action_id FROM actions a JOIN runs r ON r.id = a.run \
             WHERE a.status = 'applied' AND r.plan_fingerprint = $1",
            params![plan_fingerprint.to_owned()],
        )?
        .iter()
        .map(|r| self.get(r, 0, C))
        .collect()
    }

    fn ledger_record(&self, item: &LedgerItem) -> Result<bool, StateError> {
        self.execute(
            "recording a copied item",
            "INSERT INTO ledger (run, mailbox, kind, folder, identity, size, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (mailbox, kind, identity) DO NOTHING",
            params![
                item.run,
                item.mailbox.clone(),
                item.kind.clone(),
                item.folder.clone(),
                item.identity.clone(),
                item.size.map(to_i64),
                time::now()
            ],
        )
        .map(|n| n == 1)
    }

    fn ledger_contains(
        &self,
        mailbox: &str,
        kind: &str,
        identity: &str,
    ) -> Result<bool, StateError> {
        const C: &str = "looking up a copied item";
        let rows = self.query(
            C,
            "SELECT EXISTS (SELECT 1 FROM ledger \
             WHERE mailbox = $1 AND kind = $2 AND identity = $3)",
            params![mailbox.to_owned(), kind.to_owned(), identity.to_owned()],
        )?;
        rows.first().map_or(Ok(false), |r| self.get(r, 0, C))
    }

    fn ledger_identities(&self, mailbox: &str, kind: &str) -> Result<BTreeSet<String>, StateError> {
        const C: &str = "listing copied items";
        self.query(
            C,
            "SELECT identity FROM ledger WHERE mailbox = $1 AND kind = $2",
            params![mailbox.to_owned(), kind.to_owned()],
        )?
        .iter()
        .map(|r| self.get(r, 0, C))
        .collect()
    }

    fn ledger_versions(
        &self,
        mailbox: &str,
        kind: &str,
    ) -> Result<BTreeMap<String, ItemVersion>, StateError> {
        const C: &str = "listing copied items";
        self.query(
            C,
            "SELECT identity, digest, etag FROM ledger WHERE mailbox = $1 AND kind = $2",
            params![mailbox.to_owned(), kind.to_owned()],
        )?
        .iter()
        .map(|r| {
            Ok((
                self.get(r, 0, C)?,
                ItemVersion {
                    digest: self.get(r, 1, C)?,
                    etag: self.get(r, 2, C)?,
                },
            ))
        })
        .collect()
    }

    fn ledger_set_version(
        &self,
        mailbox: &str,
        kind: &str,
        identity: &str,
        version: &ItemVersion,
    ) -> Result<bool, StateError> {
        self.execute(
            "recording the version of a copied item",
            "UPDATE ledger SET digest = $4, etag = $5 \
             WHERE mailbox = $1 AND kind = $2 AND identity = $3",
            params![
                mailbox.to_owned(),
                kind.to_owned(),
                identity.to_owned(),
                version.digest.clone(),
                version.etag.clone()
            ],
        )
        .map(|n| n == 1)
    }

    fn ledger_summary(&self) -> Result<Vec<(String, String, u64, u64)>, StateError> {
        const C: &str = "summarising the ledger";
        self.query(
            C,
            "SELECT mailbox, kind, count(*), coalesce(sum(size), 0)::bigint FROM ledger \
             GROUP BY mailbox, kind ORDER BY mailbox, kind",
            params![],
        )?
        .iter()
        .map(|r| {
            Ok((
                self.get(r, 0, C)?,
                self.get(r, 1, C)?,
                to_u64(self.get(r, 2, C)?),
                to_u64(self.get(r, 3, C)?),
            ))
        })
        .collect()
    }

    /// One statement for the whole batch (arrays unnested), so one round trip and one commit.
    fn ledger_record_all(&self, items: &[LedgerItem]) -> Result<(), StateError> {
        if items.is_empty() {
            return Ok(());
        }
        let now = time::now();
        self.execute(
            "recording copied items",
            "INSERT INTO ledger (run, mailbox, kind, folder, identity, size, recorded_at) \
             SELECT run, mailbox, kind, folder, identity, size, $7 FROM UNNEST( \
             $1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
             AS t (run, mailbox, kind, folder, identity, size) \
             ON CONFLICT (mailbox, kind, identity) DO NOTHING",
            params![
                items.iter().map(|i| i.run).collect::<Vec<i64>>(),
                items.iter().map(|i| i.mailbox.clone()).collect::<Vec<_>>(),
                items.iter().map(|i| i.kind.clone()).collect::<Vec<_>>(),
                items.iter().map(|i| i.folder.clone()).collect::<Vec<_>>(),
                items.iter().map(|i| i.identity.clone()).collect::<Vec<_>>(),
                items.iter().map(|i| i.size.map(to_i64)).collect::<Vec<_>>(),
                now
            ],
        )
        .map(drop)
    }

    fn ledger_count(&self, mailbox: Option<&str>) -> Result<u64, StateError> {
        const C: &str = "counting copied items";
        let rows = self.query(
            C,
            "SELECT count(*) FROM ledger WHERE $1::text IS NULL OR mailbox = $1",
            params![mailbox.map(str::to_owned)],
        )?;
        rows.first()
            .map_or(Ok(0), |r| self.get::<i64>(r, 0, C).map(to_u64))
    }
}

/// Statements used in more than one place, or built from the counts' text (a cached statement's
/// SQL must be `'static`, and `concat!` takes only literals).
mod const_format_counts {
    macro_rules! counts {
        () => {
            "applied = (SELECT count(*) FROM actions WHERE run = runs.id AND status = 'applied'), \
             failed = (SELECT count(*) FROM actions WHERE run = runs.id AND status IN ('failed', 'stale')), \
             skipped = (SELECT count(*) FROM actions WHERE run = runs.id AND status = 'skipped')"
        };
    }
    pub const FINISH: &str = concat!(
        "UPDATE runs SET outcome = $2, ended_at = $3, ",
        counts!(),
        " WHERE id = $1"
    );
    pub const RUNS: &str = "SELECT id, plan_file, plan_fingerprint, started_at, ended_at, \
         outcome, applied, failed, skipped FROM runs ORDER BY id DESC";
    pub const RUN: &str = "SELECT id, plan_file, plan_fingerprint, started_at, ended_at, \
         outcome, applied, failed, skipped FROM runs WHERE id = $1";
}

/// The held advisory lock, on its own connection.
struct PgLock {
    /// `None` once released.
    client: Option<Arc<Client>>,
    place: PathBuf,
    key: i64,
    token: String,
}

impl PgLock {
    fn remove(&mut self) -> Result<(), StateError> {
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        let (key, token) = (self.key, self.token.clone());
        block(
            &self.place,
            "releasing the lock",
            QUERY_DEADLINE,
            async move {
                client
                    .execute("DELETE FROM locks WHERE token = $1", &[&token])
                    .await?;
                client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key])
                    .await
                    .map(drop)
            },
        )
    }
}

impl HeldLock for PgLock {
    fn release(mut self: Box<Self>) -> Result<(), StateError> {
        self.remove()
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        // Nowhere to report an error from here; the server frees the lock when the connection
        // closes anyway.
        let _ = self.remove();
    }
}

/// Seconds as PostgreSQL's `make_interval` takes them.
fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl WorkUnits for Postgres {
    fn enqueue(&self, unit: &str, kind: &str, subject: &str) -> Result<(), StateError> {
        self.execute(
            "queueing item work",
            "INSERT INTO units (wave, unit, kind, subject, state) \
             VALUES ($1, $2, $3, $4, 'queued') \
             ON CONFLICT (wave, unit) DO UPDATE SET kind = excluded.kind, \
             subject = excluded.subject, state = 'queued', owner = NULL, lease_until = NULL, \
             not_before = now(), attempts = 0, last_error = NULL, queued_at = now(), \
             started_at = NULL, ended_at = NULL \
             WHERE NOT (units.state = 'running' AND units.lease_until > now())",
            params![
                self.target.scope.clone(),
                unit.to_owned(),
                kind.to_owned(),
                subject.to_owned()
            ],
        )
        .map(drop)
    }

    fn enqueue_action(
        &self,
        action: &str,
        kind: &str,
        subject: &str,
        units: &[NewUnit],
    ) -> Result<(), StateError> {
        // One statement, so a worker sees either none of the action's new units or all of
        // them: the earlier units of the action that are not queued again go (unless a worker
        // holds one under a live lease), and the new ones are queued afresh.
        self.execute(
            "queueing item work",
            "WITH stale AS ( \
               DELETE FROM units WHERE wave = $1 \
               AND (unit = $2 OR left(unit, length($2) + 1) = $2 || '#') \
               AND NOT (unit = ANY($5::text[])) \
               AND NOT (state = 'running' AND lease_until > now())) \
             INSERT INTO units (wave, unit, kind, subject, state, folder) \
             SELECT $1, u, $3, $4, 'queued', f FROM UNNEST($5::text[], $6::text[]) AS t (u, f) \
             ON CONFLICT (wave, unit) DO UPDATE SET kind = excluded.kind, \
             subject = excluded.subject, folder = excluded.folder, state = 'queued', \
             owner = NULL, lease_until = NULL, not_before = now(), attempts = 0, \
             last_error = NULL, queued_at = now(), started_at = NULL, ended_at = NULL \
             WHERE NOT (units.state = 'running' AND units.lease_until > now())",
            params![
                self.target.scope.clone(),
                action.to_owned(),
                kind.to_owned(),
                subject.to_owned(),
                units.iter().map(|u| u.unit.clone()).collect::<Vec<_>>(),
                units.iter().map(|u| u.folder.clone()).collect::<Vec<_>>()
            ],
        )
        .map(drop)
    }

    fn claim(
        &self,
        owner: &str,
        lease: Duration,
        only: Option<&str>,
    ) -> Result<Option<ClaimedUnit>, StateError> {
        const C: &str = "claiming item work";
        let rows = self.query(
            C,
            "UPDATE units SET state = 'running', owner = $2, \
             lease_until = now() + make_interval(secs => $3), attempts = attempts + 1, \
             started_at = coalesce(started_at, now()), ended_at = NULL \
             WHERE (wave, unit) = ( \
               SELECT wave, unit FROM units WHERE wave = $1 \
               AND ($4::text IS NULL OR unit = $4) \
               AND ((state = 'queued' AND not_before <= now()) \
                    OR (state = 'running' AND lease_until < now())) \
               ORDER BY unit LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING unit, kind, subject, attempts, folder",
            params![
                self.target.scope.clone(),
                owner.to_owned(),
                seconds(lease),
                only.map(str::to_owned)
            ],
        )?;
        rows.first()
            .map(|r| {
                Ok(ClaimedUnit {
                    unit: self.get(r, 0, C)?,
                    kind: self.get(r, 1, C)?,
                    subject: self.get(r, 2, C)?,
                    attempts: u32::try_from(self.get::<i32>(r, 3, C)?).unwrap_or(0),
                    folder: self.get(r, 4, C)?,
                })
            })
            .transpose()
    }

    fn renew(&self, unit: &str, owner: &str, lease: Duration) -> Result<Renewal, StateError> {
        const C: &str = "renewing a lease";
        // One statement: the unit's lease, the lease of the slots its owner holds (only while
        // the unit is still the owner's), and which of those slots a lowered cap no longer
        // allows: an endpoint's live slots beyond its cap, the newest first.
        let rows = self.query(
            C,
            "WITH u AS (UPDATE units SET lease_until = now() + make_interval(secs => $4) \
               WHERE wave = $1 AND unit = $2 AND owner = $3 AND state = 'running' \
               RETURNING 1), \
             s AS (UPDATE slots SET lease_until = now() + make_interval(secs => $4) \
               WHERE holder = $3 AND lease_until > now() AND EXISTS (SELECT 1 FROM u) \
               RETURNING id), \
             live AS (SELECT l.id, l.holder, c.connections, \
               row_number() OVER (PARTITION BY l.endpoint ORDER BY l.id) AS n \
               FROM slots l LEFT JOIN caps c ON c.endpoint = l.endpoint \
               WHERE l.lease_until > now()) \
             SELECT (SELECT count(*) FROM u), \
               ARRAY(SELECT id FROM live WHERE holder = $3 AND n > connections ORDER BY id)",
            params![
                self.target.scope.clone(),
                unit.to_owned(),
                owner.to_owned(),
                seconds(lease)
            ],
        )?;
        let Some(r) = rows.first() else {
            return Ok(Renewal::default());
        };
        Ok(Renewal {
            held: self.get::<i64>(r, 0, C)? == 1,
            revoked: self.get(r, 1, C)?,
        })
    }

    fn finish(&self, unit: &str, owner: &str, copied: u64, bytes: u64) -> Result<bool, StateError> {
        self.execute(
            "recording finished item work",
            "UPDATE units SET state = 'done', owner = NULL, lease_until = NULL, \
             last_error = NULL, copied = copied + $4, bytes = bytes + $5, ended_at = now() \
             WHERE wave = $1 AND unit = $2 AND owner = $3 AND state = 'running'",
            params![
                self.target.scope.clone(),
                unit.to_owned(),
                owner.to_owned(),
                to_i64(copied),
                to_i64(bytes)
            ],
        )
        .map(|n| n == 1)
    }

    fn fail(
        &self,
        unit: &str,
        owner: &str,
        error: &str,
        max_attempts: u32,
        backoff: Duration,
    ) -> Result<AfterFailure, StateError> {
        const C: &str = "recording failed item work";
        let rows = self.query(
            C,
            "UPDATE units SET \
             state = CASE WHEN attempts >= $5 THEN 'failed' ELSE 'queued' END, \
             owner = NULL, lease_until = NULL, last_error = $4, \
             not_before = now() + make_interval(secs => $6), ended_at = now() \
             WHERE wave = $1 AND unit = $2 AND owner = $3 AND state = 'running' \
             RETURNING state",
            params![
                self.target.scope.clone(),
                unit.to_owned(),
                owner.to_owned(),
                error.to_owned(),
                i32::try_from(max_attempts).unwrap_or(i32::MAX),
                seconds(backoff)
            ],
        )?;
        Ok(match rows.first() {
            None => AfterFailure::LostLease,
            Some(r) if self.get::<String>(r, 0, C)? == "failed" => AfterFailure::Failed,
            Some(_) => AfterFailure::Retried,
        })
    }

    fn retry_failed(&self) -> Result<u64, StateError> {
        self.execute(
            "queueing failed item work again",
            "UPDATE units SET state = 'queued', attempts = 0, not_before = now() \
             WHERE wave = $1 AND state = 'failed'",
            params![self.target.scope.clone()],
        )
    }

    fn unit_rows(&self) -> Result<Vec<UnitRow>, StateError> {
        const C: &str = "listing item work";
        self.query(
            C,
            "SELECT unit, state, owner, \
             extract(epoch FROM lease_until - now())::float8, attempts, last_error, copied, \
             bytes, extract(epoch FROM coalesce(ended_at, now()) - started_at)::float8, \
             extract(epoch FROM now() - started_at)::float8, folder \
             FROM units WHERE wave = $1 ORDER BY unit",
            params![self.target.scope.clone()],
        )?
        .iter()
        .map(|r| {
            Ok(UnitRow {
                unit: self.get(r, 0, C)?,
                state: self.get(r, 1, C)?,
                owner: self.get(r, 2, C)?,
                lease_left: self.get(r, 3, C)?,
                attempts: u32::try_from(self.get::<i32>(r, 4, C)?).unwrap_or(0),
                last_error: self.get(r, 5, C)?,
                copied: to_u64(self.get(r, 6, C)?),
                bytes: to_u64(self.get(r, 7, C)?),
                seconds: self.get(r, 8, C)?,
                since_start: self.get(r, 9, C)?,
                folder: self.get(r, 10, C)?,
            })
        })
        .collect()
    }

    fn wave(&self) -> &str {
        &self.target.scope
    }

    fn waves(&self) -> Result<Vec<WaveRow>, StateError> {
        const C: &str = "listing the waves' item work";
        let n = |v: i64| to_u64(v);
        self.query(
            C,
            "SELECT wave, count(*), count(*) FILTER (WHERE state = 'done'), \
             count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'queued'), \
             count(*) FILTER (WHERE state = 'failed'), coalesce(sum(copied), 0)::int8, \
             coalesce(sum(bytes), 0)::int8, extract(epoch FROM now() - min(started_at))::float8, \
             count(DISTINCT owner) FILTER (WHERE state = 'running') \
             FROM units GROUP BY wave ORDER BY wave",
            params![],
        )?
        .iter()
        .map(|r| {
            Ok(WaveRow {
                wave: self.get(r, 0, C)?,
                units: n(self.get(r, 1, C)?),
                done: n(self.get(r, 2, C)?),
                running: n(self.get(r, 3, C)?),
                queued: n(self.get(r, 4, C)?),
                failed: n(self.get(r, 5, C)?),
                copied: n(self.get(r, 6, C)?),
                bytes: n(self.get(r, 7, C)?),
                since_start: self.get(r, 8, C)?,
                holders: n(self.get(r, 9, C)?),
            })
        })
        .collect()
    }
}

/// The advisory lock key that serialises the acquisitions of one endpoint's slots.
fn cap_key(endpoint: &str) -> i64 {
    let digest = sha2::Sha256::digest(format!("mailplan cap {endpoint}").as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(key)
}

impl SharedCaps for Postgres {
    fn write_plan_cap(
        &self,
        endpoint: &str,
        connections: u32,
        by: &str,
    ) -> Result<bool, StateError> {
        self.execute(
            "writing the plan file's connection cap",
            "INSERT INTO caps (endpoint, connections, set_by, set_at, from_plan) \
             VALUES ($1, $2, $3, now(), $2) \
             ON CONFLICT (endpoint) DO UPDATE SET connections = excluded.connections, \
             set_by = excluded.set_by, set_at = excluded.set_at, from_plan = excluded.from_plan \
             WHERE caps.from_plan IS DISTINCT FROM excluded.from_plan",
            params![
                endpoint.to_owned(),
                i32::try_from(connections).unwrap_or(i32::MAX),
                by.to_owned()
            ],
        )
        .map(|n| n == 1)
    }

    fn set_cap(&self, endpoint: &str, connections: u32, by: &str) -> Result<(), StateError> {
        self.execute(
            "setting a connection cap",
            "INSERT INTO caps (endpoint, connections, set_by, set_at) \
             VALUES ($1, $2, $3, now()) \
             ON CONFLICT (endpoint) DO UPDATE SET connections = excluded.connections, \
             set_by = excluded.set_by, set_at = excluded.set_at",
            params![
                endpoint.to_owned(),
                i32::try_from(connections).unwrap_or(i32::MAX),
                by.to_owned()
            ],
        )
        .map(drop)
    }

    fn cap_rows(&self) -> Result<Vec<CapRow>, StateError> {
        const C: &str = "listing connection caps";
        self.query(
            C,
            "SELECT c.endpoint, c.connections, c.set_by, \
             to_char(c.set_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             (SELECT count(*) FROM slots s WHERE s.endpoint = c.endpoint \
              AND s.lease_until > now()) \
             FROM caps c ORDER BY c.endpoint",
            params![],
        )?
        .iter()
        .map(|r| {
            Ok(CapRow {
                endpoint: self.get(r, 0, C)?,
                connections: u32::try_from(self.get::<i32>(r, 1, C)?).unwrap_or(0),
                set_by: self.get(r, 2, C)?,
                set_at: self.get(r, 3, C)?,
                in_use: to_u64(self.get(r, 4, C)?),
            })
        })
        .collect()
    }

    fn take_slots(
        &self,
        endpoints: &[String],
        holder: &str,
        lease: Duration,
    ) -> Result<Taken, StateError> {
        const C: &str = "taking connection slots";
        let mut wanted: BTreeMap<String, i64> = BTreeMap::new();
        for e in endpoints {
            *wanted.entry(e.clone()).or_default() += 1;
        }
        let names: Vec<String> = wanted.keys().cloned().collect();
        // Locked in one order (the endpoints sorted) by everyone, so two acquisitions of the
        // same endpoints cannot wait for each other.
        let keys: Vec<i64> = names.iter().map(|e| cap_key(e)).collect();
        let (client, list, holder, secs) = (
            self.client.clone(),
            endpoints.to_vec(),
            holder.to_owned(),
            seconds(lease),
        );
        self.note(block(&self.place, C, QUERY_DEADLINE, async move {
            client.batch_execute("BEGIN").await?;
            let taken = async {
                for key in &keys {
                    client
                        .execute("SELECT pg_advisory_xact_lock($1)", &[key])
                        .await?;
                }
                // Slots whose holder stopped renewing long ago are of no use to anyone.
                client
                    .execute(
                        "DELETE FROM slots WHERE endpoint = ANY($1) \
                         AND lease_until < now() - interval '1 hour'",
                        &[&names],
                    )
                    .await?;
                let rows = client
                    .query(
                        "SELECT c.endpoint, c.connections, (SELECT count(*) FROM slots s \
                         WHERE s.endpoint = c.endpoint AND s.lease_until > now()) \
                         FROM caps c WHERE c.endpoint = ANY($1) ORDER BY c.endpoint",
                        &[&names],
                    )
                    .await?;
                for r in rows {
                    let endpoint: String = r.try_get(0)?;
                    let cap: i32 = r.try_get(1)?;
                    let used: i64 = r.try_get(2)?;
                    let want = wanted.get(&endpoint).copied().unwrap_or(0);
                    if used + want > i64::from(cap) {
                        return Ok(Taken::Full {
                            endpoint,
                            connections: u32::try_from(cap).unwrap_or(0),
                            wanted: u32::try_from(want).unwrap_or(u32::MAX),
                        });
                    }
                }
                let ids = client
                    .query(
                        "INSERT INTO slots (endpoint, holder, lease_until) \
                         SELECT e, $2, now() + make_interval(secs => $3) \
                         FROM unnest($1::text[]) WITH ORDINALITY AS t (e, i) ORDER BY i \
                         RETURNING id",
                        &[&list, &holder, &secs],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get::<_, i64>(0))
                    .collect::<Result<Vec<i64>, _>>()?;
                Ok(Taken::Granted(ids))
            }
            .await;
            match taken {
                Ok(t) => {
                    client.batch_execute("COMMIT").await?;
                    Ok(t)
                }
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    Err(e)
                }
            }
        }))
    }

    fn give_back(&self, slots: &[i64]) -> Result<(), StateError> {
        if slots.is_empty() {
            return Ok(());
        }
        self.execute(
            "giving connection slots back",
            "DELETE FROM slots WHERE id = ANY($1)",
            params![slots.to_vec()],
        )
        .map(drop)
    }
}
