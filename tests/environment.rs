//! A company moved from certificación to producción over the API, against the SII simulator: the
//! switch waits for every document's verdict, needs producción's own resolution (certificación's is
//! refused, as the SII refuses it: CRT-3-19), retires the CAFs that are not valid there, and going
//! back takes the resolution the company holds.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use common::gateway::{factura, Gateway, RUT};
use common::server;
use common::sim::SimProcess;
use common::wait_for;

/// A gateway whose SII link (and boleta API) is the simulator, sending and tracking at once.
async fn with_sim(sim: &SimProcess, extra: &[(&str, &str)]) -> Gateway {
    let mut env = vec![
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SII_BOLETA_API_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SII_BOLETA_ENVIO_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_WORKER_INTERVAL_MS", "100"),
        ("DTE_GATEWAY_SENDER_MAX_AGE_MS", "200"),
        ("DTE_GATEWAY_TRACK_EVERY_MS", "200"),
    ];
    env.extend_from_slice(extra);
    Gateway::start(server::sqlite(), 1, &env, 10).await
}

#[tokio::test]
async fn a_company_moves_to_produccion_with_its_own_resolution() {
    let sim = SimProcess::start(&[]);
    let g = with_sim(&sim, &[]).await;
    let admin_key = g.add_company("76555835-2", 5).await;
    let path = format!("/v1/companies/{RUT}/environment");
    let (_, c) = g.send("GET", &format!("/v1/companies/{RUT}"), &g.key, None).await;
    assert_eq!(c["Resoluciones"]["certificacion"], json!({"FchResol": "2014-08-22", "NroResol": 80}), "{c}");

    // A document on its way to the SII holds the company where it is.
    let (s, b) = g.issue(0, &factura("Servicio", 10_000), None).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let prod = json!({"environment": "produccion", "FchResol": "2024-05-02", "NroResol": 123});
    let (s, p) = g.send("PUT", &path, &g.admin, Some(prod.clone())).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("verdict")), "{p}");
    wait_for("the SII's verdict", Duration::from_secs(30), async || {
        let states = g.states(RUT, &g.key).await;
        (states.get("accepted") == Some(&1)).then_some(())
    })
    .await;

    // Without producción's resolution, or with certificación's, nothing moves.
    let (s, p) = g.send("PUT", &path, &g.admin, Some(json!({"environment": "produccion"}))).await;
    assert_eq!((s, p["type"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/invalid-document")), "{p}");
    assert_eq!(p["errors"][0]["code"], "resolution-required", "{p}");
    let same = json!({"environment": "produccion", "FchResol": "2014-08-22", "NroResol": 80});
    let (s, p) = g.send("PUT", &path, &g.admin, Some(same)).await;
    assert_eq!(
        (s, p["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("resolution-environment"))
    );
    // Another company's admin key does not see this one; a key without admin may not.
    let (s, _) = g.send("PUT", &path, &admin_key, Some(prod.clone())).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = g.send("PUT", &path, &g.key, Some(prod.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, c) = g.send("GET", &format!("/v1/companies/{RUT}"), &g.key, None).await;
    assert_eq!((c["environment"].as_str(), c["NroResol"].as_u64()), (Some("certificacion"), Some(80)), "{c}");

    // With its own: producción, its resolution on the Carátula, the test CAF retired.
    let (s, v) = g.send("PUT", &path, &g.admin, Some(prod)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["environment"].as_str(), v["FchResol"].as_str(), v["NroResol"].as_u64(), v["cafs_retired"].as_u64()),
        (Some("produccion"), Some("2024-05-02"), Some(123), Some(1)),
        "{v}"
    );
    assert_eq!(v["Resoluciones"]["produccion"], json!({"FchResol": "2024-05-02", "NroResol": 123}), "{v}");
    let cafs = g.cafs().await;
    assert!(cafs.as_array().unwrap().iter().all(|c| c["retired"] == true), "{cafs}");
    // No folio is left to issue with, and a certificación CAF is not taken in producción.
    let (s, p) = g.issue(0, &factura("Servicio", 10_000), None).await;
    assert_eq!((s, p["type"].as_str()), (StatusCode::CONFLICT, Some("/problems/caf-exhausted")), "{p}");
    let (s, p) = g.add_caf(RUT, 33, 11, 20).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");

    // Back to certificación: the resolution it holds, no need to give it again.
    let (s, v) = g.send("PUT", &path, &g.admin, Some(json!({"environment": "certificacion"}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["FchResol"].as_str(), v["NroResol"].as_u64()), (Some("2014-08-22"), Some(80)), "{v}");
    let (s, p) = g.add_caf(RUT, 33, 11, 20).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, b) = g.issue(0, &factura("Servicio", 10_000), None).await;
    assert_eq!((s, b["folio"].as_u64()), (StatusCode::CREATED, Some(11)), "{b}");
}

/// A boleta issued by a company in certificación, sent by the configured channel.
async fn boleta_sent(sim: &SimProcess, channel: &str) -> serde_json::Value {
    let before = sim.counters().await;
    let g = with_sim(sim, &[("DTE_GATEWAY_BOLETA_CHANNEL_CERTIFICACION", channel)]).await;
    let (s, b) = g.add_caf(RUT, 39, 1, 10).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let boleta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::repo("examples/39-boleta.json")).unwrap()).unwrap();
    let (s, b) = g.send("POST", &format!("/v1/companies/{RUT}/documents"), &g.key, Some(boleta)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    wait_for("the boleta's verdict", Duration::from_secs(30), async || {
        let states = g.states(RUT, &g.key).await;
        (states.get("accepted") == Some(&1)).then_some(())
    })
    .await;
    let after = sim.counters().await;
    let delta = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
    json!({"dteupload": delta("boletas_by_dteupload"), "rest": delta("boletas_by_rest")})
}

#[tokio::test]
async fn in_certificacion_boletas_go_by_dteupload_when_set_and_by_the_rest_api_otherwise() {
    let sim = SimProcess::start(&[]);
    assert_eq!(boleta_sent(&sim, "dteupload").await, json!({"dteupload": 1, "rest": 0}));
    assert_eq!(boleta_sent(&sim, "rest").await, json!({"dteupload": 0, "rest": 1}));
}
