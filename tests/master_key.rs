//! Master-key rotation: every certificate and CAF key re-sealed in one transaction; the gateway
//! signs with the new key, the old key no longer opens anything, and the audit chain records it.

mod common;

use reqwest::StatusCode;

use common::gateway::{factura, Gateway, RUT};
use common::server::{env, postgres, sqlite, Db, Server};

const NEW_KEY: &str = "bmV3LW1hc3Rlci1rZXktb2YtMzItYnl0ZXMtbG9uZyE=";

async fn rotates(db: Db) {
    let mut g = Gateway::start(db, 1, &[], 100).await;
    assert_eq!(g.issue(0, &factura("antes", 1000), None).await.0, StatusCode::CREATED);
    g.servers[0].kill9();

    let dir = tempfile::tempdir().unwrap();
    let out = common::bin()
        .args(["master-key", "rotate"])
        .envs(env(&g.db, dir.path()))
        .env("DTE_GATEWAY_NEW_MASTER_KEY", NEW_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(common::text(&out).contains("re-sealed 1 certificate(s) and 1 CAF(s)"), "{}", common::text(&out));

    // The old key opens nothing any more: an instance started with it is refused, saying why.
    let out = Server::refused(&g.db, &[], &[]);
    assert!(out.contains("master key does not match"), "{out}");

    g.servers[0] = Server::start(&g.db, &[("DTE_GATEWAY_MASTER_KEY", NEW_KEY)]);
    let (s, b) = g.issue(0, &factura("después", 1000), None).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["folio"], 2, "{b}");

    let out = common::bin()
        .args(["audit", "verify"])
        .envs(env(&g.db, dir.path()))
        .env("DTE_GATEWAY_MASTER_KEY", NEW_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_key_rotation_on_sqlite() {
    rotates(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_key_rotation_on_postgres() {
    rotates(postgres()).await;
}

/// A few statements against the test database, whatever its backend.
async fn sql_rows(db: &Db, sql: &str) -> Vec<Vec<String>> {
    match db {
        Db::Sqlite(dir) => {
            let c = rusqlite::Connection::open(dir.path().join("gw.sqlite")).expect("open");
            let mut st = c.prepare(sql).expect("prepare");
            let n = st.column_count();
            st.query_map([], |r| (0..n).map(|i| r.get::<_, rusqlite::types::Value>(i)).collect::<Result<Vec<_>, _>>())
                .expect("query")
                .map(|r| {
                    r.expect("row")
                        .into_iter()
                        .map(|v| match v {
                            rusqlite::types::Value::Integer(i) => i.to_string(),
                            rusqlite::types::Value::Text(t) => t,
                            other => format!("{other:?}"),
                        })
                        .collect()
                })
                .collect()
        }
        Db::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let rows = client.simple_query(sql).await.expect("query");
            rows.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).unwrap_or_default().to_string()).collect())
                    }
                    _ => None,
                })
                .collect()
        }
    }
}

fn sha256_hex(s: &str) -> String {
    openssl::sha::sha256(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn audit_verify(db: &Db) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = common::bin().args(["audit", "verify"]).envs(env(db, dir.path())).output().unwrap();
    (out.status.success(), common::text(&out))
}

/// Someone with write access to the database but not the master key rewrites an entry, deletes
/// the last one and recomputes every link after it (all the unkeyed chain needed).
async fn forged_chain_is_detected(db: Db) {
    let g = Gateway::start(db, 1, &[], 10).await;
    let (s, b) = g
        .send(
            "POST",
            &format!("/v1/companies/{RUT}/webhooks"),
            &g.admin,
            Some(serde_json::json!({"url": "https://erp.example.cl/hooks"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = g.send("POST", &format!("/v1/companies/{RUT}/webhooks/{}/secret", b["id"]), &g.admin, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (ok, out) = audit_verify(&g.db);
    assert!(ok && out.contains("head *") && out.contains(&format!("head {RUT}")), "{out}");

    let q = format!(
        "SELECT id, seq, action, subject, data, prev_hash, created_at FROM audit WHERE scope = '{RUT}' ORDER BY seq"
    );
    let chain = sql_rows(&g.db, &q).await;
    let actions: Vec<&str> = chain.iter().map(|r| r[2].as_str()).collect();
    assert!(actions.contains(&"webhook.add") && actions.contains(&"webhook.rotate-secret"), "{actions:?}");
    // The webhook's secret is sealed, not stored as given.
    let secrets = sql_rows(&g.db, "SELECT secret FROM webhooks").await;
    assert!(secrets.iter().all(|r| r[0].starts_with("v1:")), "{secrets:?}");

    let last = chain.last().unwrap()[0].clone();
    let mut stmts = vec![format!("DELETE FROM audit WHERE id = {last}")];
    let mut prev = "0".repeat(64);
    for (i, r) in chain[..chain.len() - 1].iter().enumerate() {
        let data = if i == 0 { "{\"forged\":true}".to_string() } else { r[4].clone() };
        let h = sha256_hex(&format!("{prev}|{RUT}|{}|{}|{}|{data}|{}", r[1], r[2], r[3], r[6]));
        stmts.push(format!(
            "UPDATE audit SET data = '{}', prev_hash = '{prev}', hash = '{h}' WHERE id = {}",
            data.replace('\'', "''"),
            r[0]
        ));
        prev = h;
    }
    for s in stmts {
        sql_rows(&g.db, &s).await;
    }
    let (ok, out) = audit_verify(&g.db);
    assert!(!ok && out.contains("BROKEN"), "a recomputed chain passed: {out}");
    // Nor is it laundered by removing the key check value so that the next start takes the
    // forged chain for one from before keyed chains and keys it.
    sql_rows(&g.db, "DELETE FROM vault_check").await;
    let (ok, out) = audit_verify(&g.db);
    assert!(!ok && out.contains("no master key check value"), "{out}");
    let (ok, out) = audit_verify(&g.db);
    assert!(!ok && out.contains("no master key check value"), "the first refusal changed something: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_audit_chain_is_detected_on_sqlite() {
    forged_chain_is_detected(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_audit_chain_is_detected_on_postgres() {
    forged_chain_is_detected(postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_without_one_shared_master_key_refuse_to_start() {
    let db = postgres();
    // No key at all on a shared database: refused, whatever the data folder holds.
    let out = Server::refused(&db, &[], &["DTE_GATEWAY_MASTER_KEY"]);
    assert!(out.contains("master_key is not set"), "{out}");
    // The first instance records its key's check value; one with another key is refused.
    let first = Server::start(&db, &[]);
    let out = Server::refused(&db, &[("DTE_GATEWAY_MASTER_KEY", NEW_KEY)], &[]);
    assert!(out.contains("master key does not match"), "{out}");
    drop(first);
    // The same on the embedded store, and a command that seals nothing makes no key file.
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let out = common::bin()
        .args(["keys", "create", "--admin"])
        .envs(env(&db, dir.path()))
        .env_remove("DTE_GATEWAY_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", common::text(&out));
    assert!(common::text(&out).contains("no master key"), "{}", common::text(&out));
    assert!(!dir.path().join("master.key").exists(), "keys create wrote a master key");
    let _ok = Server::start(&db, &[]);
    let out = Server::refused(&db, &[("DTE_GATEWAY_MASTER_KEY", NEW_KEY)], &[]);
    assert!(out.contains("master key does not match"), "{out}");
}
