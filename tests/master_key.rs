//! Master-key rotation: every certificate and CAF key re-sealed in one transaction; the gateway
//! signs with the new key, the old key no longer opens anything, and the audit chain records it.

mod common;

use reqwest::StatusCode;

use common::gateway::{factura, Gateway};
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

    // The old key opens nothing any more: issuance fails and takes no folio.
    g.servers[0] = Server::start(&g.db, &[]);
    let (s, b) = g.issue(0, &factura("clave vieja", 1000), None).await;
    assert!(s.is_server_error(), "{s} {b}");
    g.servers[0].kill9();

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
