//! Versioned schema migrations, one numbered SQL file per change and backend under `migrations/`,
//! embedded in the binary. A table `schema_migrations` records what was applied with a checksum of
//! its text, so a released migration that was edited afterwards is refused instead of silently
//! diverging. Migrations are applied at start under a lock (two instances starting together apply
//! each one once) and by `dte-gateway migrate`.
//!
//! A database made before versioning (release 0.1.0: tables, no version table) is adopted: the
//! first migration is that release's schema written with `IF NOT EXISTS`, so applying it over such
//! a database changes nothing and records version 1.

use serde::Serialize;

use super::StoreError;

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($backend:literal, $version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../migrations/", $backend, "/", $file)),
        }
    };
}

// Files are `NNNN_name.sql`; a test checks that this list and the folders agree.
pub const SQLITE: &[Migration] = &[
    migration!("sqlite", 1, "initial", "0001_initial.sql"),
    migration!("sqlite", 2, "security", "0002_security.sql"),
    migration!("sqlite", 3, "company_logos", "0003_company_logos.sql"),
    migration!("sqlite", 4, "caf_retirement", "0004_caf_retirement.sql"),
    migration!("sqlite", 5, "document_traces", "0005_document_traces.sql"),
    migration!("sqlite", 6, "received", "0006_received.sql"),
    migration!("sqlite", 7, "delivery", "0007_delivery.sql"),
    migration!("sqlite", 8, "console", "0008_console.sql"),
];
pub const POSTGRES: &[Migration] = &[
    migration!("postgres", 1, "initial", "0001_initial.sql"),
    migration!("postgres", 2, "security", "0002_security.sql"),
    migration!("postgres", 3, "company_logos", "0003_company_logos.sql"),
    migration!("postgres", 4, "caf_retirement", "0004_caf_retirement.sql"),
    migration!("postgres", 5, "document_traces", "0005_document_traces.sql"),
    migration!("postgres", 6, "received", "0006_received.sql"),
    migration!("postgres", 7, "delivery", "0007_delivery.sql"),
    migration!("postgres", 8, "console", "0008_console.sql"),
];

/// The migration that brings the master key's check value (see `audit`).
pub const KEY_CHECK_VERSION: i64 = 2;

pub(super) const VERSION_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
     name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)";

/// What a migration run found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrationReport {
    /// The database had tables but no version table: made by release 0.1.0.
    pub adopted: bool,
    /// Versions and names applied by this run (or, for a dry run, that would be).
    pub applied: Vec<(i64, String)>,
    /// The schema version after the run (before it, for a dry run).
    pub version: i64,
    pub dry_run: bool,
}

pub fn checksum(sql: &str) -> String {
    crate::crypto::sha256_hex(sql.as_bytes())
}

/// The migrations still to apply, given the `(version, checksum)` rows already recorded. Pure, so
/// the rules are tested without a database: an edited released migration or a database newer than
/// this binary is an error, never something to paper over.
pub fn pending<'a>(known: &'a [Migration], applied: &[(i64, String)]) -> Result<Vec<&'a Migration>, StoreError> {
    let newest = known.iter().map(|m| m.version).max().unwrap_or(0);
    for (version, sum) in applied {
        match known.iter().find(|m| m.version == *version) {
            None if *version > newest => {
                return Err(StoreError::Db(format!(
                    "the database is at schema version {version}, newer than this release knows ({newest}); \
                     run a release at least as new as the one that migrated it"
                )))
            }
            None => return Err(StoreError::Db(format!("schema version {version} is recorded but unknown to this release"))),
            Some(m) if checksum(m.sql) != *sum => {
                return Err(StoreError::Db(format!(
                    "migration {version} ({}) differs from the one applied to this database; released migrations are never edited",
                    m.name
                )))
            }
            Some(_) => {}
        }
    }
    Ok(known.iter().filter(|m| !applied.iter().any(|(v, _)| *v == m.version)).collect())
}

fn now() -> String {
    super::ts(chrono::Utc::now())
}

/// SQLite: one `BEGIN IMMEDIATE` transaction takes the database's write lock for the whole run, so
/// a second process waits and then finds everything applied. SQLite's DDL is transactional.
pub(super) fn run_sqlite(c: &mut rusqlite::Connection, dry_run: bool) -> Result<MigrationReport, StoreError> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let tables = |name: &str| -> Result<bool, StoreError> {
        Ok(tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| {
            r.get::<_, i64>(0)
        })? > 0)
    };
    let versioned = tables("schema_migrations")?;
    let adopted = !versioned && tables("companies")?;
    let applied: Vec<(i64, String)> = if versioned {
        let mut st = tx.prepare("SELECT version, checksum FROM schema_migrations ORDER BY version")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        rows
    } else {
        Vec::new()
    };
    let todo = pending(SQLITE, &applied)?;
    let mut report = report(adopted, &applied, &todo, dry_run);
    if dry_run || todo.is_empty() {
        return Ok(report);
    }
    tx.execute_batch(VERSION_TABLE_SQL)?;
    for m in &todo {
        tx.execute_batch(m.sql).map_err(|e| StoreError::Db(format!("migration {} ({}): {e}", m.version, m.name)))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![m.version, m.name, checksum(m.sql), now()],
        )?;
    }
    tx.commit()?;
    report.version = report.applied.last().map(|(v, _)| *v).unwrap_or(report.version);
    Ok(report)
}

/// PostgreSQL: a session advisory lock on one connection serialises instances; each migration is
/// applied in its own transaction with its version row, so a failure leaves the ones before it.
pub(super) async fn run_postgres(
    c: &mut deadpool_postgres::Object,
    dry_run: bool,
) -> Result<MigrationReport, StoreError> {
    c.batch_execute("SELECT pg_advisory_lock(7413)").await?;
    let result = postgres_locked(c, dry_run).await;
    // The lock is released with the session anyway; unlocking returns the connection clean.
    let unlocked = c.batch_execute("SELECT pg_advisory_unlock(7413)").await;
    let report = result?;
    unlocked?;
    Ok(report)
}

async fn postgres_locked(c: &mut deadpool_postgres::Object, dry_run: bool) -> Result<MigrationReport, StoreError> {
    let exists = c
        .query_one(
            "SELECT to_regclass('public.schema_migrations') IS NOT NULL, to_regclass('public.companies') IS NOT NULL",
            &[],
        )
        .await?;
    let versioned: bool = exists.get(0);
    let adopted = !versioned && exists.get::<_, bool>(1);
    let applied: Vec<(i64, String)> = if versioned {
        c.query("SELECT version, checksum FROM schema_migrations ORDER BY version", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    } else {
        Vec::new()
    };
    let todo = pending(POSTGRES, &applied)?;
    let mut report = report(adopted, &applied, &todo, dry_run);
    if dry_run || todo.is_empty() {
        return Ok(report);
    }
    c.batch_execute(VERSION_TABLE_SQL).await?;
    for m in &todo {
        let tx = c.transaction().await?;
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| StoreError::Db(format!("migration {} ({}): {e}", m.version, m.name)))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
            &[&m.version, &m.name, &checksum(m.sql), &now()],
        )
        .await?;
        tx.commit().await?;
        report.version = m.version;
    }
    Ok(report)
}

fn report(adopted: bool, applied: &[(i64, String)], todo: &[&Migration], dry_run: bool) -> MigrationReport {
    MigrationReport {
        adopted,
        applied: todo.iter().map(|m| (m.version, m.name.to_string())).collect(),
        version: applied.iter().map(|(v, _)| *v).max().unwrap_or(0),
        dry_run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `migrations/<backend>/` is embedded, numbered 1, 2, 3… with no gap, and
    /// both backends have the same versions and names.
    #[test]
    fn the_embedded_lists_match_the_migration_folders() {
        for (backend, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            files.sort();
            let embedded: Vec<String> = list.iter().map(|m| format!("{:04}_{}.sql", m.version, m.name)).collect();
            assert_eq!(files, embedded, "{backend}");
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{backend}: versions are 1, 2, 3…");
            }
        }
        let names = |l: &[Migration]| l.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
    }

    #[test]
    fn pending_skips_applied_and_refuses_edits_and_newer_databases() {
        const A: Migration = Migration { version: 1, name: "a", sql: "CREATE TABLE a (x INT);" };
        const B: Migration = Migration { version: 2, name: "b", sql: "CREATE TABLE b (x INT);" };
        let known = [A, B];
        let v = |p: Vec<&Migration>| p.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(v(pending(&known, &[]).unwrap()), vec![1, 2]);
        assert_eq!(v(pending(&known, &[(1, checksum(A.sql))]).unwrap()), vec![2]);
        assert!(v(pending(&known, &[(1, checksum(A.sql)), (2, checksum(B.sql))]).unwrap()).is_empty());
        let edited = pending(&known, &[(1, checksum("CREATE TABLE a (x BIGINT);"))]).unwrap_err();
        assert!(edited.to_string().contains("never edited"), "{edited}");
        let newer = pending(&known, &[(1, checksum(A.sql)), (2, checksum(B.sql)), (3, "x".into())]).unwrap_err();
        assert!(newer.to_string().contains("newer than this release"), "{newer}");
    }
}
