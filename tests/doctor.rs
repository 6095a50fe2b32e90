//! `dte-gateway doctor` against a real deployment: healthy (exit 0), then a wrong master key, an
//! expired certificate and a stopped PostgreSQL, each named with what to do (exit 1).

mod common;

use common::gateway::{Gateway, RUT};
use common::server::{env, postgres, Db};

fn doctor(db: &Db, extra: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let o = common::bin().arg("doctor").envs(env(db, dir.path())).envs(extra.iter().copied()).output().unwrap();
    (o.status.code().unwrap_or(-1), common::text(&o))
}

async fn sql(db: &Db, statement: &str) {
    let Db::Postgres(url) = db else { unreachable!() };
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(statement).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn doctor_names_each_problem_and_what_to_do() {
    let sim = common::sim::SimProcess::start(&[]);
    let link = [
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SII_BOLETA_API_URL_CERTIFICACION", sim.base.as_str()),
    ];
    let g = Gateway::start(postgres(), 1, &[], 100).await;

    let (code, out) = doctor(&g.db, &link);
    assert_eq!(code, 0, "{out}");
    for line in [
        "ok   configuration",
        "ok   database: postgres answers",
        "ok   migrations: schema version",
        "ok   master key: matches",
        &format!("ok   {RUT} certificate: valid until"),
        &format!("ok   {RUT} CAF T33: 100 folios left"),
        "ok   SII certificación",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    // The cheap checks are in /health/ready too.
    let ready: serde_json::Value = reqwest::get(g.url("/health/ready")).await.unwrap().json().await.unwrap();
    assert_eq!((ready["status"].as_str(), ready["master_key"]["ok"].as_bool()), (Some("ready"), Some(true)), "{ready}");

    let (code, out) = doctor(&g.db, &[("DTE_GATEWAY_MASTER_KEY", "bmV3LW1hc3Rlci1rZXktb2YtMzItYnl0ZXMtbG9uZyE=")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL master key: does not match"), "{out}");

    sql(&g.db, "UPDATE certificates SET not_after = '2025-01-31T00:00:00Z'").await;
    let (code, out) = doctor(&g.db, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("FAIL {RUT} certificate: expired on 2025-01-31 — PUT a new one")), "{out}");

    drop(g);
    common::server::stop_postgres();
    let db = Db::Postgres(postgres_url_of_stopped());
    let (code, out) = doctor(&db, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL database") && out.contains("is the database running"), "{out}");
}

/// A database URL on the stopped cluster.
fn postgres_url_of_stopped() -> String {
    format!("{}/postgres", common::server::postgres_base_url())
}
