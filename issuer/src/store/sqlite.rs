//! The embedded store: one SQLite file in WAL mode.
//!
//! Durability: WAL with `synchronous = NORMAL` by default. A commit is in
//! the WAL file (the OS page cache) before it is acknowledged, so a killed
//! process (SIGKILL, OOM, panic) loses nothing; only an OS crash or power
//! loss can drop the last transactions. `synchronous = FULL`
//! ([`Synchronous::Full`], `ISSUER_SQLITE_SYNC=full`) also survives those,
//! at the price of an fsync per commit.
//!
//! SQLite calls block, so every call runs on tokio's blocking pool, never on
//! an async worker. One connection serves the process (SQLite serialises
//! writers anyway and each call takes microseconds); writes take the lock
//! up front (`BEGIN IMMEDIATE`), so several processes on one file are safe
//! too. `SQLITE_BUSY` after the busy timeout, I/O errors and the like are
//! [`StoreError::Unavailable`], and the transaction is rolled back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use token_core::revocation::{FeedEvent, RevocationId};

use super::{
    AttemptCounter, AttemptOutcome, Family, FeedCursor, FeedWindow, NewRefresh, NewUser, PasswordChange, PasswordProof,
    PendingSignup, RefreshRecord, ResetToken, RevocationEvent, RevocationPage, RevocationTarget, RotateOutcome,
    SignupOutcome, Store, StoreError, UserRecord, lockout_secs,
};

/// The SQLite file inside the data directory.
pub const DB_FILE: &str = "issuer.sqlite3";

/// `PRAGMA synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Survives a killed process; an OS crash may lose the last commits.
    #[default]
    Normal,
    /// Survives power loss too: one fsync per commit.
    Full,
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a call waits for another writer's lock before giving up
    /// with [`StoreError::Unavailable`]. Defaults to 2 s.
    pub busy_timeout: Duration,
    /// Durability level. Defaults to [`Synchronous::Normal`].
    pub synchronous: Synchronous,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { busy_timeout: Duration::from_secs(2), synchronous: Synchronous::Normal }
    }
}

/// The embedded store. Cheap to clone (shares one connection).
#[derive(Clone)]
pub struct SqliteStore {
    /// One connection, one call at a time. An async mutex, taken with the
    /// busy timeout as its bound: while another process holds the database,
    /// a call waiting out its own busy timeout must not hold every other
    /// request past theirs (each answers 503 after at most one busy timeout).
    conn: Arc<tokio::sync::Mutex<Connection>>,
    busy_timeout: Duration,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The schema, by version (`PRAGMA user_version`). Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: users, families, refresh tokens.
    "CREATE TABLE users (
        user_id       TEXT PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        scope         TEXT NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until  INTEGER NOT NULL DEFAULT 0,
        created_at    INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE families (
        family_id  TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    ) STRICT;
    CREATE INDEX families_by_user ON families(user_id);
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        family_id  TEXT NOT NULL REFERENCES families(family_id) ON DELETE CASCADE,
        user_id    TEXT NOT NULL,
        issued_at  INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    ) STRICT;
    CREATE INDEX refresh_by_family ON refresh_tokens(family_id);
    CREATE INDEX refresh_by_expiry ON refresh_tokens(expires_at);",
    // 2: login attempt counters (keyed hashes and window numbers, never
    // emails or addresses).
    "CREATE TABLE attempts (
        key        TEXT PRIMARY KEY,
        count      INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX attempts_by_expiry ON attempts(expires_at);",
    // 3: the revocation feed (hashed ids only: `rid` is the RevocationId,
    // `kind` 0 = session, 1 = subject), ordered by its primary key, and each
    // user's `tokens_valid_after`.
    "ALTER TABLE users ADD COLUMN tokens_valid_after INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE revocations (
        time_ms  INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        kind     INTEGER NOT NULL,
        rid      BLOB NOT NULL,
        before_s INTEGER,
        until    INTEGER NOT NULL,
        PRIMARY KEY (time_ms, event_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX revocations_by_until ON revocations(until);",
    // 4: registrations waiting for verification (keyed by the token's hash;
    // no claim on the address) and password reset tokens (one per user).
    "CREATE TABLE pending_signups (
        token_hash    TEXT PRIMARY KEY,
        email         TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        scope         TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX pending_signups_by_expiry ON pending_signups(expires_at);
    CREATE TABLE reset_tokens (
        user_id    TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX reset_tokens_by_expiry ON reset_tokens(expires_at);
    ALTER TABLE users ADD COLUMN password_changed_at INTEGER NOT NULL DEFAULT 0;",
];

/// Expired pending registrations and reset tokens deleted per write of one.
const PENDING_SWEEP: i64 = 16;

/// Expired attempt windows deleted per [`Store::take_attempt`]: the table
/// stays near the live windows without a separate sweeper.
const ATTEMPT_SWEEP: i64 = 16;

/// One page of the feed: a range on the primary key, in its order.
const FEED_PAGE: &str = "SELECT time_ms, event_id, kind, rid, before_s, until FROM revocations
     WHERE (time_ms, event_id) > (?1, ?2) AND time_ms <= ?3 AND until > ?4
     ORDER BY time_ms, event_id LIMIT ?5";

/// A few expired events, found through the index on `until`.
const FEED_SWEEP: &str = "DELETE FROM revocations WHERE (time_ms, event_id) IN
     (SELECT time_ms, event_id FROM revocations WHERE until <= ?1 LIMIT ?2)";

/// Expired revocation events deleted per [`Store::record_revocation`]
/// (through the index on `until`): more than one per event written, so the
/// table stays near the live events.
const REVOCATION_SWEEP: i64 = 16;

fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DatabaseCorrupt => {
            StoreError::Corrupt(e.to_string())
        }
        // Busy, locked, I/O, disk full, read-only, cannot open, ...: the
        // transaction rolled back (dropped), nothing was written.
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn is_email_conflict(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(msg))
        if f.code == ErrorCode::ConstraintViolation && msg.contains("users.email"))
}

/// Times are u64 in the API and INTEGER (i64) in SQLite.
fn to_db(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn from_db(t: i64) -> Result<u64, StoreError> {
    u64::try_from(t).map_err(|_| StoreError::Corrupt(format!("negative time {t}")))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, sets WAL mode,
    /// the durability level and the busy timeout, and migrates the schema.
    /// Blocking: call at start-up.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated,
    /// [`StoreError::Corrupt`] if it is not a database of this schema.
    pub fn open(path: &Path, opts: &SqliteOptions) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
        restrict_permissions(path);
        conn.busy_timeout(opts.busy_timeout).map_err(map_err)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!("cannot switch {} to WAL (got {mode})", path.display())));
        }
        let sync = match opts.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(map_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(map_err)?;
        migrate(&mut conn)?;
        // WAL and shared-memory files hold the same data: same permissions.
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            restrict_permissions(Path::new(&p));
        }
        Ok(SqliteStore {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
            busy_timeout: opts.busy_timeout,
            path: Arc::new(path.to_owned()),
        })
    }

    /// Opens `<dir>/issuer.sqlite3`, creating `dir` (mode 0700) if needed.
    ///
    /// # Errors
    /// As [`SqliteStore::open`]; [`StoreError::Unavailable`] if the
    /// directory cannot be created.
    pub fn open_in_dir(dir: &Path, opts: &SqliteOptions) -> Result<Self, StoreError> {
        crate::keys::create_private_dir(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        Self::open(&dir.join(DB_FILE), opts)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let mut guard = tokio::time::timeout(self.busy_timeout, Arc::clone(&self.conn).lock_owned())
            .await
            .map_err(|_| StoreError::Unavailable("database busy: no connection within the busy timeout".into()))?;
        tokio::task::spawn_blocking(move || f(&mut guard))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Deletes refresh tokens that expired before `now - keep_secs`, and
    /// families past their lifetime with no tokens left. Returns the number
    /// of tokens deleted. Expiry is checked on every read anyway: this only
    /// keeps the file small.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on database errors.
    pub async fn purge_expired(&self, now: u64, keep_secs: u64) -> Result<u64, StoreError> {
        let cutoff = to_db(now.saturating_sub(keep_secs));
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let n = tx.execute("DELETE FROM refresh_tokens WHERE expires_at < ?1", params![cutoff]).map_err(map_err)?;
            tx.execute(
                "DELETE FROM families WHERE expires_at < ?1
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = families.family_id)",
                params![cutoff],
            )
            .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
            Ok(n as u64)
        })
        .await
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(map_err)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(map_err)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Corrupt(format!("schema version {version} is newer than this build ({known})")));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        tx.execute_batch(sql).map_err(map_err)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(map_err)?;
    }
    tx.commit().map_err(map_err)
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if path.exists() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

const USER_COLUMNS: &str =
    "user_id, email, password_hash, scope, failed_logins, locked_until, tokens_valid_after, password_changed_at";

type UserRow = (String, String, String, String, i64, i64, i64, i64);

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

fn to_user(row: UserRow) -> Result<UserRecord, StoreError> {
    let (user_id, email, password_hash, scope, failed, locked, valid_after, changed_at) = row;
    Ok(UserRecord {
        user_id,
        email,
        password_hash,
        scope,
        failed_logins: u32::try_from(failed).map_err(|_| StoreError::Corrupt(format!("failed_logins {failed}")))?,
        locked_until: from_db(locked)?,
        tokens_valid_after: from_db(valid_after)?,
        password_changed_at: from_db(changed_at)?,
    })
}

fn read_user(c: &Connection, sql_where: &str, key: &str) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {sql_where} = ?1");
    let row = c.prepare_cached(&sql).map_err(map_err)?.query_row(params![key], user_row).optional().map_err(map_err)?;
    row.map(to_user).transpose()
}

type RefreshRow = (String, String, String, i64, i64, Option<i64>, i64, i64, Option<i64>);

fn read_refresh(c: &Connection, token_hash: &str) -> Result<Option<(RefreshRecord, Family)>, StoreError> {
    let row: Option<RefreshRow> = c
        .prepare_cached(
            "SELECT t.token_hash, t.family_id, t.user_id, t.issued_at, t.expires_at, t.used_at,
                    f.created_at, f.expires_at, f.revoked_at
             FROM refresh_tokens t JOIN families f ON f.family_id = t.family_id
             WHERE t.token_hash = ?1",
        )
        .map_err(map_err)?
        .query_row(params![token_hash], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
        })
        .optional()
        .map_err(map_err)?;
    let Some((token_hash, family_id, user_id, issued_at, expires_at, used_at, f_created, f_expires, f_revoked)) = row
    else {
        return Ok(None);
    };
    let family = Family {
        family_id: family_id.clone(),
        user_id: user_id.clone(),
        created_at: from_db(f_created)?,
        expires_at: from_db(f_expires)?,
        revoked_at: f_revoked.map(from_db).transpose()?,
    };
    let record = RefreshRecord {
        token_hash,
        family_id,
        user_id,
        issued_at: from_db(issued_at)?,
        expires_at: from_db(expires_at)?,
        used_at: used_at.map(from_db).transpose()?,
    };
    Ok(Some((record, family)))
}

fn insert_refresh(c: &Connection, new: &NewRefresh) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(map_err)?
    .execute(params![new.token_hash, new.family_id, new.user_id, to_db(new.issued_at), to_db(new.expires_at)])
    .map_err(map_err)?;
    Ok(())
}

/// Is the family usable at `now`?
fn family_active(c: &Connection, family_id: &str, now: u64) -> Result<bool, StoreError> {
    let row: Option<(i64, Option<i64>)> = c
        .prepare_cached("SELECT expires_at, revoked_at FROM families WHERE family_id = ?1")
        .map_err(map_err)?
        .query_row(params![family_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(map_err)?;
    Ok(match row {
        Some((expires_at, None)) => from_db(expires_at)? > now,
        _ => false,
    })
}

/// Raises the user's `tokens_valid_after` (subject events) and inserts the
/// event, inside the caller's transaction.
fn insert_event(tx: &Connection, event: &RevocationEvent) -> Result<(), StoreError> {
    let before = match &event.target {
        RevocationTarget::Subject { user_id, before, .. } => {
            tx.prepare_cached("UPDATE users SET tokens_valid_after = MAX(tokens_valid_after, ?2) WHERE user_id = ?1")
                .map_err(map_err)?
                .execute(params![user_id, to_db(*before)])
                .map_err(map_err)?;
            Some(to_db(*before))
        }
        RevocationTarget::Session { .. } => None,
    };
    let (kind, rid) = match event.feed_event() {
        FeedEvent::Session { id, .. } => (0i64, id),
        FeedEvent::Subject { id, .. } => (1i64, id),
    };
    tx.prepare_cached(
        "INSERT INTO revocations (time_ms, event_id, kind, rid, before_s, until) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(map_err)?
    .execute(params![to_db(event.time_ms), event.event_id, kind, &rid.0[..], before, to_db(event.until)])
    .map_err(map_err)?;
    Ok(())
}

impl Store for SqliteStore {
    async fn create_user(&self, user: &NewUser) -> Result<(), StoreError> {
        let u = user.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let res = tx.execute(
                "INSERT INTO users (user_id, email, password_hash, scope, failed_logins, locked_until, created_at)
                 VALUES (?1, ?2, ?3, ?4, 0, 0, ?5)",
                params![u.user_id, u.email, u.password_hash, u.scope, to_db(u.created_at)],
            );
            match res {
                Ok(_) => tx.commit().map_err(map_err),
                Err(e) if is_email_conflict(&e) => Err(StoreError::EmailTaken),
                Err(e) => Err(map_err(e)),
            }
        })
        .await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let email = email.to_owned();
        self.run(move |c| read_user(c, "email", &email)).await
    }

    async fn get_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        let id = user_id.to_owned();
        self.run(move |c| read_user(c, "user_id", &id)).await
    }

    async fn record_login_failure(
        &self,
        user_id: &str,
        now: u64,
        lock_after: u32,
        max_lock_secs: u64,
    ) -> Result<UserRecord, StoreError> {
        let id = user_id.to_owned();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let mut user = read_user(&tx, "user_id", &id)?
                .ok_or_else(|| StoreError::Corrupt("login failure for a user that does not exist".into()))?;
            user.failed_logins = user.failed_logins.saturating_add(1);
            if user.failed_logins >= lock_after {
                user.locked_until = now.saturating_add(lockout_secs(user.failed_logins, lock_after, max_lock_secs));
            }
            tx.execute(
                "UPDATE users SET failed_logins = ?2, locked_until = ?3 WHERE user_id = ?1",
                params![id, i64::from(user.failed_logins), to_db(user.locked_until)],
            )
            .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
            Ok(user)
        })
        .await
    }

    async fn record_login_success(&self, user_id: &str, now: u64, new_hash: Option<&str>) -> Result<bool, StoreError> {
        let id = user_id.to_owned();
        let new_hash = new_hash.map(str::to_owned);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let user = read_user(&tx, "user_id", &id)?
                .ok_or_else(|| StoreError::Corrupt("login success for a user that does not exist".into()))?;
            if user.locked_until > now {
                return Ok(false);
            }
            tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until = 0,
                     password_hash = COALESCE(?2, password_hash) WHERE user_id = ?1",
                params![id, new_hash],
            )
            .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
            Ok(true)
        })
        .await
    }

    async fn create_session(&self, family: &Family, first: &NewRefresh) -> Result<(), StoreError> {
        let (f, first) = (family.clone(), first.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            tx.prepare_cached(
                "INSERT INTO families (family_id, user_id, created_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(map_err)?
            .execute(params![f.family_id, f.user_id, to_db(f.created_at), to_db(f.expires_at), f.revoked_at.map(to_db)])
            .map_err(map_err)?;
            insert_refresh(&tx, &first)?;
            tx.commit().map_err(map_err)
        })
        .await
    }

    async fn get_refresh(&self, token_hash: &str) -> Result<Option<(RefreshRecord, Family)>, StoreError> {
        let h = token_hash.to_owned();
        self.run(move |c| read_refresh(c, &h)).await
    }

    async fn rotate(&self, old_hash: &str, new: &NewRefresh, now: u64) -> Result<RotateOutcome, StoreError> {
        let (old, new) = (old_hash.to_owned(), new.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let Some((rec, fam)) = read_refresh(&tx, &old)? else {
                return Ok(RotateOutcome::Inactive);
            };
            if rec.expires_at <= now || fam.revoked_at.is_some() || fam.expires_at <= now {
                return Ok(RotateOutcome::Inactive);
            }
            if let Some(used_at) = rec.used_at {
                return Ok(RotateOutcome::AlreadyUsed { used_at });
            }
            let changed = tx
                .prepare_cached("UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL")
                .map_err(map_err)?
                .execute(params![old, to_db(now)])
                .map_err(map_err)?;
            if changed != 1 {
                // Impossible under the write lock; never write the successor.
                return Err(StoreError::Unavailable("rotation lost its row".into()));
            }
            insert_refresh(&tx, &new)?;
            tx.commit().map_err(map_err)?;
            Ok(RotateOutcome::Rotated)
        })
        .await
    }

    async fn add_to_family(&self, new: &NewRefresh, now: u64) -> Result<bool, StoreError> {
        let new = new.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            if !family_active(&tx, &new.family_id, now)? {
                return Ok(false);
            }
            insert_refresh(&tx, &new)?;
            tx.commit().map_err(map_err)?;
            Ok(true)
        })
        .await
    }

    async fn revoke_family(&self, family_id: &str, now: u64) -> Result<(), StoreError> {
        let id = family_id.to_owned();
        self.run(move |c| {
            c.prepare_cached("UPDATE families SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL")
                .map_err(map_err)?
                .execute(params![id, to_db(now)])
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn revoke_user_families(&self, user_id: &str, now: u64) -> Result<u32, StoreError> {
        let id = user_id.to_owned();
        self.run(move |c| {
            let n = c
                .prepare_cached("UPDATE families SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL")
                .map_err(map_err)?
                .execute(params![id, to_db(now)])
                .map_err(map_err)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .await
    }

    async fn take_attempt(&self, counters: &[AttemptCounter], now: u64) -> Result<AttemptOutcome, StoreError> {
        let rows: Vec<(String, u32, u64)> =
            counters.iter().map(|c| (c.window_key(now), c.limit, c.window(now).1)).collect();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let mut at_limit = 0u8;
            let mut retry_after = 0u64;
            for (i, (key, limit, end)) in rows.iter().enumerate() {
                let count: i64 = tx
                    .query_row("SELECT count FROM attempts WHERE key = ?1", params![key], |r| r.get(0))
                    .optional()
                    .map_err(map_err)?
                    .unwrap_or(0);
                if count >= i64::from(*limit) {
                    at_limit |= 1u8.checked_shl(u32::try_from(i).unwrap_or(8)).unwrap_or(0);
                    retry_after = retry_after.max(end.saturating_sub(now).max(1));
                }
            }
            if at_limit != 0 {
                return Ok(AttemptOutcome::Refused { retry_after, at_limit });
            }
            for (key, _, end) in &rows {
                tx.execute(
                    "INSERT INTO attempts (key, count, expires_at) VALUES (?1, 1, ?2)
                     ON CONFLICT(key) DO UPDATE SET count = count + 1",
                    params![key, to_db(*end)],
                )
                .map_err(map_err)?;
            }
            tx.execute(
                "DELETE FROM attempts WHERE rowid IN
                     (SELECT rowid FROM attempts WHERE expires_at <= ?1 LIMIT ?2)",
                params![to_db(now), ATTEMPT_SWEEP],
            )
            .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
            Ok(AttemptOutcome::Granted)
        })
        .await
    }

    async fn clear_attempts(&self, counter: &AttemptCounter, now: u64) -> Result<(), StoreError> {
        let key = counter.window_key(now);
        self.run(move |c| {
            c.execute("DELETE FROM attempts WHERE key = ?1", params![key]).map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn record_revocation(&self, event: &RevocationEvent, now: u64) -> Result<bool, StoreError> {
        let event = event.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let family = match &event.target {
                RevocationTarget::Session { family_id } => Some(family_id),
                RevocationTarget::Subject { family_id, .. } => family_id.as_ref(),
            };
            if let Some(family_id) = family {
                let revoked = tx
                    .prepare_cached("UPDATE families SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL")
                    .map_err(map_err)?
                    .execute(params![family_id, to_db(now)])
                    .map_err(map_err)?;
                if revoked == 0 {
                    return Ok(false);
                }
            }
            insert_event(&tx, &event)?;
            tx.prepare_cached(FEED_SWEEP)
                .map_err(map_err)?
                .execute(params![to_db(now), REVOCATION_SWEEP])
                .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
            Ok(true)
        })
        .await
    }

    async fn create_signup(&self, signup: &PendingSignup) -> Result<(), StoreError> {
        let p = signup.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            tx.prepare_cached(
                "INSERT INTO pending_signups (token_hash, email, password_hash, scope, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(map_err)?
            .execute(params![p.token_hash, p.email, p.password_hash, p.scope, to_db(p.created_at), to_db(p.expires_at)])
            .map_err(map_err)?;
            tx.prepare_cached(
                "DELETE FROM pending_signups WHERE token_hash IN
                     (SELECT token_hash FROM pending_signups WHERE expires_at <= ?1 LIMIT ?2)",
            )
            .map_err(map_err)?
            .execute(params![to_db(p.created_at), PENDING_SWEEP])
            .map_err(map_err)?;
            tx.commit().map_err(map_err)
        })
        .await
    }

    async fn complete_signup(&self, token_hash: &str, user_id: &str, now: u64) -> Result<SignupOutcome, StoreError> {
        let (hash, id) = (token_hash.to_owned(), user_id.to_owned());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let row: Option<(String, String, String, i64)> = tx
                .prepare_cached(
                    "SELECT email, password_hash, scope, expires_at FROM pending_signups WHERE token_hash = ?1",
                )
                .map_err(map_err)?
                .query_row(params![hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
                .map_err(map_err)?;
            let Some((email, password_hash, scope, expires_at)) = row else {
                return Ok(SignupOutcome::Invalid);
            };
            // Used up, whatever happens next.
            tx.prepare_cached("DELETE FROM pending_signups WHERE token_hash = ?1")
                .map_err(map_err)?
                .execute(params![hash])
                .map_err(map_err)?;
            if from_db(expires_at)? <= now {
                tx.commit().map_err(map_err)?;
                return Ok(SignupOutcome::Invalid);
            }
            let res = tx.execute(
                "INSERT INTO users (user_id, email, password_hash, scope, failed_logins, locked_until, created_at)
                 VALUES (?1, ?2, ?3, ?4, 0, 0, ?5)",
                params![id, email, password_hash, scope, to_db(now)],
            );
            match res {
                Ok(_) => {}
                Err(e) if is_email_conflict(&e) => {
                    tx.commit().map_err(map_err)?;
                    return Ok(SignupOutcome::EmailTaken);
                }
                Err(e) => return Err(map_err(e)),
            }
            let user = read_user(&tx, "user_id", &id)?
                .ok_or_else(|| StoreError::Corrupt("a user just created cannot be read".into()))?;
            tx.commit().map_err(map_err)?;
            Ok(SignupOutcome::Created(user))
        })
        .await
    }

    async fn put_reset(&self, reset: &ResetToken) -> Result<(), StoreError> {
        let r = reset.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            tx.prepare_cached(
                "INSERT INTO reset_tokens (user_id, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(user_id) DO UPDATE SET token_hash = ?2, created_at = ?3, expires_at = ?4",
            )
            .map_err(map_err)?
            .execute(params![r.user_id, r.token_hash, to_db(r.created_at), to_db(r.expires_at)])
            .map_err(map_err)?;
            tx.prepare_cached(
                "DELETE FROM reset_tokens WHERE user_id IN
                     (SELECT user_id FROM reset_tokens WHERE expires_at <= ?1 LIMIT ?2)",
            )
            .map_err(map_err)?
            .execute(params![to_db(r.created_at), PENDING_SWEEP])
            .map_err(map_err)?;
            tx.commit().map_err(map_err)
        })
        .await
    }

    async fn get_reset(&self, user_id: &str) -> Result<Option<ResetToken>, StoreError> {
        let id = user_id.to_owned();
        self.run(move |c| {
            let row: Option<(String, i64, i64)> = c
                .prepare_cached("SELECT token_hash, created_at, expires_at FROM reset_tokens WHERE user_id = ?1")
                .map_err(map_err)?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(map_err)?;
            row.map(|(token_hash, created_at, expires_at)| {
                Ok(ResetToken {
                    user_id: id.clone(),
                    token_hash,
                    created_at: from_db(created_at)?,
                    expires_at: from_db(expires_at)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn change_password(&self, change: &PasswordChange, now: u64) -> Result<bool, StoreError> {
        let ch = change.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
            let Some(user) = read_user(&tx, "user_id", &ch.user_id)? else {
                return Ok(false);
            };
            let proven = match &ch.proof {
                PasswordProof::ResetToken { token_hash } => {
                    tx.prepare_cached(
                        "DELETE FROM reset_tokens WHERE user_id = ?1 AND token_hash = ?2 AND expires_at > ?3",
                    )
                    .map_err(map_err)?
                    .execute(params![ch.user_id, token_hash, to_db(now)])
                    .map_err(map_err)?
                        == 1
                }
                PasswordProof::CurrentHash { hash } => user.password_hash == *hash,
            };
            if !proven {
                return Ok(false);
            }
            tx.prepare_cached("UPDATE users SET password_hash = ?2, password_changed_at = ?3 WHERE user_id = ?1")
                .map_err(map_err)?
                .execute(params![ch.user_id, ch.new_hash, to_db(now)])
                .map_err(map_err)?;
            insert_event(&tx, &ch.event)?;
            tx.commit().map_err(map_err)?;
            Ok(true)
        })
        .await
    }

    async fn revocations_after(
        &self,
        after: Option<&FeedCursor>,
        limit: usize,
        now_ms: u64,
    ) -> Result<RevocationPage, StoreError> {
        let window = FeedWindow::new(after, limit, now_ms);
        self.run(move |c| {
            let mut stmt = c.prepare_cached(FEED_PAGE).map_err(map_err)?;
            let start_id = window.start.event_id.clone().unwrap_or_default();
            let fetch = i64::try_from(window.limit).unwrap_or(i64::MAX).saturating_add(1);
            let rows = stmt
                .query_map(
                    params![to_db(window.start.time_ms), start_id, to_db(window.as_of_ms), to_db(window.now_s), fetch],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                            r.get::<_, Option<i64>>(4)?,
                            r.get::<_, i64>(5)?,
                        ))
                    },
                )
                .map_err(map_err)?;
            let mut events = Vec::new();
            let mut last = None;
            for row in rows {
                let (time_ms, event_id, kind, rid, before, until) = row.map_err(map_err)?;
                if events.len() == window.limit {
                    // One more than a page: another page follows.
                    return Ok(window.page(events, last));
                }
                let id = RevocationId(
                    rid.as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("revocation id is not 16 bytes".into()))?,
                );
                let until = from_db(until)?;
                events.push(match (kind, before) {
                    (0, None) => FeedEvent::Session { id, until },
                    (1, Some(before)) => FeedEvent::Subject { id, before: from_db(before)?, until },
                    _ => return Err(StoreError::Corrupt(format!("revocation event of kind {kind}"))),
                });
                last = Some(FeedCursor { time_ms: from_db(time_ms)?, event_id: Some(event_id) });
            }
            Ok(window.page(events, None))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let mut b = [0u8; 8];
            aws_lc_rs::rand::fill(&mut b).unwrap();
            let p = std::env::temp_dir().join(format!("issuer-sqlite-{tag}-{}", u64::from_le_bytes(b)));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The feed reads a range of the primary key (no sort, no full scan)
    /// and the sweep finds expired events through the index on `until`.
    #[test]
    fn feed_queries_use_the_indexes() {
        let dir = TempDir::new("plan");
        let store = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
        let c = store.conn.try_lock().unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map(params![0, "", 0, 0, 1], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join(" | ")
        };
        let page = plan(FEED_PAGE);
        assert!(page.contains("SEARCH revocations USING PRIMARY KEY ((time_ms,event_id)>(?,?)"), "{page}");
        assert!(!page.contains("TEMP B-TREE"), "no sort: {page}");
        let sweep = plan(&FEED_SWEEP.replace("?1", "?4").replace("?2", "?5"));
        assert!(sweep.contains("USING COVERING INDEX revocations_by_until (until<?)"), "{sweep}");
    }

    fn user(id: &str, email: &str) -> NewUser {
        NewUser {
            user_id: id.into(),
            email: email.into(),
            password_hash: "$argon2id$x".into(),
            scope: "openid".into(),
            created_at: 1,
        }
    }

    fn refresh(hash: &str, family: &str, at: u64) -> NewRefresh {
        NewRefresh {
            token_hash: hash.into(),
            family_id: family.into(),
            user_id: "u1".into(),
            issued_at: at,
            expires_at: at + 100,
        }
    }

    fn family(id: &str, expires_at: u64) -> Family {
        Family { family_id: id.into(), user_id: "u1".into(), created_at: 0, expires_at, revoked_at: None }
    }

    #[tokio::test]
    async fn wal_mode_and_schema_at_open() {
        let dir = TempDir::new("wal");
        let store = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
        let conn = Connection::open(store.path()).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        drop(store);
        // Re-opening an up-to-date file migrates nothing and keeps data.
        SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
    }

    #[tokio::test]
    async fn email_unique_and_user_round_trip() {
        let dir = TempDir::new("users");
        let s = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
        s.create_user(&user("u1", "a@example.com")).await.unwrap();
        assert!(matches!(s.create_user(&user("u2", "a@example.com")).await, Err(StoreError::EmailTaken)));
        let u = s.find_user_by_email("a@example.com").await.unwrap().unwrap();
        assert_eq!(u.user_id, "u1");
        assert_eq!(s.get_user("u1").await.unwrap().unwrap(), u);
        assert!(s.find_user_by_email("b@example.com").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn failures_lock_and_success_resets() {
        let dir = TempDir::new("lock");
        let s = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
        s.create_user(&user("u1", "a@example.com")).await.unwrap();
        for n in 1..=4 {
            let u = s.record_login_failure("u1", 1000, 5, 900).await.unwrap();
            assert_eq!((u.failed_logins, u.locked_until), (n, 0));
        }
        let u = s.record_login_failure("u1", 1000, 5, 900).await.unwrap();
        assert_eq!((u.failed_logins, u.locked_until), (5, 1001));
        let u = s.record_login_failure("u1", 1002, 5, 900).await.unwrap();
        assert_eq!(u.locked_until, 1004);
        assert!(!s.record_login_success("u1", 1003, None).await.unwrap(), "locked: nothing written");
        assert!(s.record_login_success("u1", 1004, Some("$argon2id$new")).await.unwrap());
        let u = s.get_user("u1").await.unwrap().unwrap();
        assert_eq!((u.failed_logins, u.locked_until, u.password_hash.as_str()), (0, 0, "$argon2id$new"));
    }

    #[tokio::test]
    async fn rotate_once_then_already_used() {
        let dir = TempDir::new("rotate");
        let s = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
        s.create_session(&family("f1", 500), &refresh("h1", "f1", 10)).await.unwrap();
        assert_eq!(s.rotate("h1", &refresh("h2", "f1", 20), 20).await.unwrap(), RotateOutcome::Rotated);
        assert_eq!(
            s.rotate("h1", &refresh("h3", "f1", 21), 21).await.unwrap(),
            RotateOutcome::AlreadyUsed { used_at: 20 }
        );
        assert!(s.get_refresh("h3").await.unwrap().is_none(), "nothing written");
        assert_eq!(s.rotate("nope", &refresh("h4", "f1", 21), 21).await.unwrap(), RotateOutcome::Inactive);
        // Expired token (expires_at = 120) and a revoked family are inactive.
        assert_eq!(s.rotate("h2", &refresh("h5", "f1", 120), 120).await.unwrap(), RotateOutcome::Inactive);
        s.revoke_family("f1", 30).await.unwrap();
        s.revoke_family("f1", 40).await.unwrap();
        let (_, fam) = s.get_refresh("h2").await.unwrap().unwrap();
        assert_eq!(fam.revoked_at, Some(30), "first revocation time kept");
        assert_eq!(s.rotate("h2", &refresh("h6", "f1", 31), 31).await.unwrap(), RotateOutcome::Inactive);
        assert!(!s.add_to_family(&refresh("h7", "f1", 31), 31).await.unwrap());
    }

    #[tokio::test]
    async fn fifty_concurrent_rotations_one_winner() {
        let dir = TempDir::new("race");
        let s = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
        s.create_session(&family("f1", 500), &refresh("h0", "f1", 10)).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.rotate("h0", &refresh(&format!("n{i}"), "f1", 20), 20).await }));
        }
        let mut rotated = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                RotateOutcome::Rotated => rotated += 1,
                RotateOutcome::AlreadyUsed { used_at } => assert_eq!(used_at, 20),
                RotateOutcome::Inactive => panic!("inactive"),
            }
        }
        assert_eq!(rotated, 1);
        let conn = Connection::open(s.path()).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM refresh_tokens", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2, "the old token and exactly one successor");
    }

    #[tokio::test]
    async fn revoke_user_families_counts_new_revocations() {
        let dir = TempDir::new("revoke");
        let s = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
        for i in 0..3 {
            s.create_session(&family(&format!("f{i}"), 500), &refresh(&format!("h{i}"), &format!("f{i}"), 1))
                .await
                .unwrap();
        }
        s.revoke_family("f0", 5).await.unwrap();
        assert_eq!(s.revoke_user_families("u1", 6).await.unwrap(), 2);
        assert_eq!(s.revoke_user_families("u1", 7).await.unwrap(), 0);
        assert!(!s.add_to_family(&refresh("x", "f1", 8), 8).await.unwrap());
    }

    #[tokio::test]
    async fn busy_database_is_unavailable_and_writes_nothing() {
        let dir = TempDir::new("busy");
        let opts = SqliteOptions { busy_timeout: Duration::from_millis(50), ..SqliteOptions::default() };
        let s = SqliteStore::open_in_dir(&dir.0, &opts).unwrap();
        let mut other = Connection::open(s.path()).unwrap();
        let tx = other.transaction_with_behavior(TransactionBehavior::Exclusive).unwrap();
        let err = s.create_user(&user("u1", "a@example.com")).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        tx.rollback().unwrap();
        assert!(s.get_user("u1").await.unwrap().is_none());
    }

    /// Found by scripts/chaos-issuer.sh: while another process held the
    /// database, calls queued for the one connection behind a call waiting
    /// out its busy timeout, and so waited for the whole outage instead of
    /// answering 503 after one busy timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_fail_within_a_busy_timeout_while_the_database_is_held() {
        let dir = TempDir::new("held");
        let busy = Duration::from_millis(200);
        let opts = SqliteOptions { busy_timeout: busy, ..SqliteOptions::default() };
        let s = SqliteStore::open_in_dir(&dir.0, &opts).unwrap();
        let mut other = Connection::open(s.path()).unwrap();
        let tx = other.transaction_with_behavior(TransactionBehavior::Exclusive).unwrap();
        // The property is an ordering: every call is answered while the other
        // process still holds the database (the lock is only released after
        // all of them returned). Calls that queued for the whole outage would
        // never return here; the deadline only turns that hang into a message.
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.create_user(&user(&format!("u{i}"), &format!("u{i}@example.com"))).await })
            })
            .collect();
        let answered = tokio::time::timeout(Duration::from_secs(60), async {
            let mut out = Vec::new();
            for c in calls {
                out.push(c.await.unwrap());
            }
            out
        })
        .await
        .expect("calls queued behind the held database instead of answering within a busy timeout");
        for r in answered {
            assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        }
        tx.rollback().unwrap();
        assert!(s.get_user("u0").await.unwrap().is_none());
        s.create_user(&user("u9", "u9@example.com")).await.unwrap();
    }

    #[tokio::test]
    async fn purge_drops_long_expired_tokens() {
        let dir = TempDir::new("purge");
        let s = SqliteStore::open_in_dir(&dir.0, &SqliteOptions::default()).unwrap();
        s.create_session(&family("f1", 150), &refresh("h1", "f1", 10)).await.unwrap();
        assert_eq!(s.purge_expired(100, 0).await.unwrap(), 0);
        assert_eq!(s.purge_expired(1000, 0).await.unwrap(), 1);
        assert!(s.get_refresh("h1").await.unwrap().is_none());
    }
}
