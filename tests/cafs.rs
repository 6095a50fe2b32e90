//! The CAF lifecycle: the pace of issuance and the day folios run out (API and metric), CAFs
//! retired by hand or expired, and their never-used folios listed for annulment at the SII.

mod common;

use std::time::{Duration, Instant};

use chrono::Local;
use reqwest::StatusCode;
use serde_json::Value;

use common::gateway::{caf_xml, factura, Gateway, RUT};
use common::server::{env, Db};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pace_projection_retirement_and_unused_folios() {
    let g = Gateway::start(common::server::sqlite(), 1, &[], 100).await;
    // A known pace: 14 facturas this week, 2 a day.
    for i in 0..14 {
        assert_eq!(g.issue(0, &factura(&format!("ritmo {i}"), 1000), None).await.0, StatusCode::CREATED);
    }
    let (s, f) = g.send("GET", &format!("/v1/companies/{RUT}/cafs/forecast"), &g.key, None).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    let t33 = f.as_array().unwrap().iter().find(|x| x["tipo"] == 33).cloned().unwrap();
    assert_eq!((t33["folios_left"].as_i64(), t33["issued_last_7_days"].as_i64()), (Some(86), Some(14)), "{t33}");
    assert_eq!((t33["per_day"].as_f64(), t33["days_left"].as_f64()), (Some(2.0), Some(43.0)), "{t33}");
    let expected = (Local::now().date_naive() + chrono::Duration::days(43)).to_string();
    assert_eq!(t33["exhausted_on"].as_str(), Some(expected.as_str()), "{t33}");

    // The same as a metric, refreshed by the instance (every 15 s).
    let started = Instant::now();
    loop {
        let scrape = g.http.get(g.servers[0].metrics_url()).send().await.unwrap().text().await.unwrap();
        let line = format!("dte_caf_days_left{{company=\"{RUT}\",tipo=\"33\"}} 43");
        let alt = format!("dte_caf_days_left{{tipo=\"33\",company=\"{RUT}\"}} 43");
        if scrape.lines().any(|l| l == line || l == alt) && scrape.lines().any(|l| l == "dte_caf_warning_days 14") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "no dte_caf_days_left 43:\n{scrape}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A new CAF, and the old one retired by hand: issuance moves on to the new range.
    let (s, b) = g
        .raw(
            "POST",
            &format!("/v1/companies/{RUT}/cafs"),
            &g.admin,
            caf_xml(33, 101, 200, RUT).into_bytes(),
            "application/xml",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let cafs = g.cafs().await;
    let first = cafs.as_array().unwrap().iter().find(|c| c["desde"] == 1).unwrap()["id"].as_i64().unwrap();
    let (s, _) = g.send("POST", &format!("/v1/companies/{RUT}/cafs/{first}/retire"), &g.key, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "retiring takes an admin key");
    let (s, b) = g.send("POST", &format!("/v1/companies/{RUT}/cafs/{first}/retire"), &g.admin, None).await;
    assert_eq!((s, b["retired"].as_bool()), (StatusCode::OK, Some(true)), "{b}");
    let (s, _) = g.send("POST", &format!("/v1/companies/{RUT}/cafs/{first}/retire"), &g.admin, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "retired already");
    let (s, b) = g.issue(0, &factura("después", 1000), None).await;
    assert_eq!((s, b["folio"].as_i64()), (StatusCode::CREATED, Some(101)), "{b}");

    // The second CAF expires unused past 101.
    let Db::Sqlite(dir) = &g.db else { unreachable!() };
    let c = rusqlite::Connection::open(dir.path().join("gw.sqlite")).unwrap();
    c.execute("UPDATE cafs SET expires_on = '2026-01-31' WHERE desde = 101", []).unwrap();
    let (s, u) = g.send("GET", &format!("/v1/companies/{RUT}/cafs/unused"), &g.key, None).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    let ranges: Vec<(i64, i64, i64, String)> = u
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tipo"].as_i64().unwrap(),
                r["desde"].as_i64().unwrap(),
                r["hasta"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ranges, vec![(33, 15, 100, "retired".into()), (33, 102, 200, "expired".into())], "{u}");
    let (_, f) = g.send("GET", &format!("/v1/companies/{RUT}/cafs/forecast"), &g.key, None).await;
    assert_eq!(f[0]["folios_left"], 0, "{f}");

    // The same from the command line, one range a line for the SII's annulment form.
    let work = tempfile::tempdir().unwrap();
    let out = common::bin().args(["caf", "unused", "--company", RUT]).envs(env(&g.db, work.path())).output().unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("{RUT}\t33\t15\t100\t"))
            && lines[1].starts_with(&format!("{RUT}\t33\t102\t200\t")),
        "{text}"
    );
    let _: Value = f;
}
