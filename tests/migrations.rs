//! Versioned migrations on real databases: a SQLite file and a PostgreSQL database made by release
//! 0.1.0 (`tests/data/upgrade/`) are adopted and keep serving their documents byte for byte, with
//! signatures that still verify, and issue the next folio; `migrate --dry-run` lists and changes
//! nothing; two instances starting on one empty PostgreSQL both come up with each migration once.

mod common;

use std::path::Path;
use std::process::Command;

use common::gateway::RUT;
use common::server::{self, env, pg_bin, Db, Server};
use common::{bin, repo, text, xmlsec1_verify};
use serde_json::Value;

/// The demo keys `serve --demo` printed when the fixtures were made (test-only databases).
const SQLITE_KEY: &str = "dgw_7_KAfoISSg0XK_H_kQXTKqtRJoCsSx9qKFPFyp9QVJM";
const POSTGRES_KEY: &str = "dgw_C8QI7PBVVDMnDUQoLThWlvFcYxOpAbxKqr6gPROSms4";
/// The documents in both fixtures: (tipo, folio).
const OLD: [(i32, i64); 4] = [(33, 1), (39, 1), (52, 1), (33, 2)];

fn migrate(db: &Db, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin().arg("migrate").args(args).envs(env(db, dir.path())).output().expect("migrate");
    assert!(out.status.success(), "migrate {args:?}: {}", text(&out));
    text(&out)
}

fn block_on<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
    })
    .join()
    .expect("thread")
}

async fn pg_query(url: String, sql: &'static str) -> Vec<tokio_postgres::Row> {
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.query(sql, &[]).await.expect("query")
}

/// What the old release stored, read straight from its database before any migration.
fn old_xml(db: &Db) -> Vec<((i32, i64), Vec<u8>)> {
    let rows: Vec<(i32, i64, Vec<u8>)> = match db {
        Db::Sqlite(d) => {
            let c = rusqlite::Connection::open(d.path().join("gw.sqlite")).expect("open");
            let mut st = c.prepare("SELECT tipo, folio, xml FROM documents ORDER BY id").expect("prepare");
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("query");
            rows.map(|r| r.expect("row")).collect()
        }
        Db::Postgres(u) => block_on(pg_query(u.clone(), "SELECT tipo, folio, xml FROM documents ORDER BY id"))
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    };
    rows.into_iter().map(|(t, f, x)| ((t, f), x)).collect()
}

async fn upgraded_instance_serves_and_issues(db: Db, key: &str) {
    let before = old_xml(&db);
    assert_eq!(before.iter().map(|(k, _)| *k).collect::<Vec<_>>(), OLD);

    let dry = migrate(&db, &["--dry-run"]);
    assert!(
        dry.contains("schema version 0")
            && dry.contains("adopted")
            && dry.contains("would apply 0001_initial")
            && dry.contains("would apply 0002_security")
            && dry.contains("would apply 0003_company_logos")
            && dry.contains("would apply 0004_caf_retirement")
            && dry.contains("would apply 0005_document_traces")
            && dry.contains("would apply 0006_received")
            && dry.contains("would apply 0007_delivery")
            && dry.contains("would apply 0008_console"),
        "{dry}"
    );
    assert_eq!(old_xml(&db), before, "a dry run changes nothing");

    let server = Server::start(&db, &[]);
    let http = reqwest::Client::new();
    let work = tempfile::tempdir().expect("tempdir");
    for ((tipo, folio), xml) in &before {
        let r = http
            .get(server.url(&format!("/v1/companies/{RUT}/documents/{tipo}/{folio}/xml")))
            .bearer_auth(key)
            .send()
            .await
            .expect("get xml");
        assert_eq!(r.status(), 200, "{tipo}/{folio}");
        let served = r.bytes().await.expect("body");
        assert_eq!(served.as_ref(), xml.as_slice(), "T{tipo} F{folio} byte-identical after the upgrade");
        let file = work.path().join(format!("{tipo}-{folio}.xml"));
        std::fs::write(&file, &served).expect("write");
        let v = xmlsec1_verify(&file, "http://www.sii.cl/SiiDte:Documento", None);
        assert!(v.status.success(), "T{tipo} F{folio}: {}", text(&v));
    }
    // The next folios continue the old CAFs (types without the 6-month expiry, so the test does
    // not depend on the day it runs).
    for (example, tipo, next) in [("52-guia-despacho", 52, 2), ("39-boleta", 39, 2)] {
        let body = std::fs::read(repo(&format!("examples/{example}.json"))).expect("example");
        let r = http
            .post(server.url(&format!("/v1/companies/{RUT}/documents")))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("issue");
        assert_eq!(r.status(), 201, "T{tipo}");
        let b: Value = r.json().await.expect("json");
        assert_eq!(b["folio"], next, "T{tipo}: {b}");
    }
    drop(server);
    let again = migrate(&db, &[]);
    assert!(
        again.contains("schema version 8") && again.contains("up to date") && !again.contains("adopted"),
        "{again}"
    );
    // The old release's unkeyed audit chain was checked and keyed at the first start: it verifies
    // under the master key, entries of the old release and of the new one alike.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::bin().args(["audit", "verify"]).envs(server::env(&db, dir.path())).output().expect("audit");
    assert!(out.status.success() && text(&out).contains("audit chain intact"), "{}", text(&out));
}

#[tokio::test]
async fn a_release_0_1_0_sqlite_file_is_adopted_and_keeps_serving() {
    let db = server::sqlite();
    let Db::Sqlite(dir) = &db else { unreachable!() };
    std::fs::copy(repo("tests/data/upgrade/release-0.1.0.sqlite"), dir.path().join("gw.sqlite")).expect("copy");
    upgraded_instance_serves_and_issues(db, SQLITE_KEY).await;
}

fn restore(db: &Db, dump: &Path) {
    let Db::Postgres(url) = db else { unreachable!() };
    let out = Command::new(pg_bin("psql"))
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(dump)
        .output()
        .expect("psql");
    assert!(out.status.success(), "restore: {}", text(&out));
}

#[tokio::test]
async fn a_release_0_1_0_postgres_database_is_adopted_and_keeps_serving() {
    let db = server::postgres();
    restore(&db, &repo("tests/data/upgrade/release-0.1.0.postgres.sql"));
    upgraded_instance_serves_and_issues(db, POSTGRES_KEY).await;
}

#[tokio::test]
async fn two_instances_migrating_one_empty_postgres_both_start() {
    let db = server::postgres();
    let dry = migrate(&db, &["--dry-run"]);
    assert!(dry.contains("would apply 0001_initial") && !dry.contains("adopted"), "{dry}");
    let url = db.url();
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let db = Db::Postgres(url.clone());
            std::thread::spawn(move || Server::start(&db, &[]))
        })
        .collect();
    let servers: Vec<Server> = starts.into_iter().map(|t| t.join().expect("an instance failed to start")).collect();
    let http = reqwest::Client::new();
    for s in &servers {
        let r = http.get(s.url("/health/ready")).send().await.expect("ready");
        assert_eq!(r.status(), 200);
    }
    let rows = block_on(pg_query(url, "SELECT version FROM schema_migrations ORDER BY version"));
    assert_eq!(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(migrate(&db, &["--dry-run"]).contains("up to date"));
}

#[tokio::test]
async fn a_new_sqlite_database_is_created_at_the_newest_version() {
    let db = server::sqlite();
    let out = migrate(&db, &[]);
    assert!(
        out.contains("applied 0001_initial")
            && out.contains("applied 0002_security")
            && out.contains("applied 0003_company_logos")
            && out.contains("applied 0004_caf_retirement")
            && out.contains("applied 0005_document_traces")
            && out.contains("applied 0006_received")
            && out.contains("applied 0007_delivery")
            && out.contains("applied 0008_console")
            && out.contains("schema version 8"),
        "{out}"
    );
    assert!(migrate(&db, &["--dry-run"]).contains("up to date"));
}
