//! The operations material: alert rules pass promtool (syntax and unit tests, one firing and one
//! quiet case per alert), and every metric the rules and dashboards use is one the service exports.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::repo;

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(repo("deploy/prometheus"))
        .output()
        .expect("promtool is required (apt-get install prometheus)")
}

#[test]
fn alert_rules_check_and_their_unit_tests_pass() {
    let o = promtool(&["check", "rules", "alerts.yml"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let o = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// Every `dte_…` identifier in a text, histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("dte_") {
        let start = i + p;
        let boundary = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b'-'
                || bytes[start - 1] == b'/');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            let name = &text[start..end];
            let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            out.insert(base.to_string());
        }
        i = end.max(start + 4);
    }
    out
}

#[test]
fn rules_and_dashboards_use_only_exported_metrics() {
    let exported: BTreeSet<&str> = dte_gateway::telemetry::ALL.iter().copied().collect();
    let mut used = metric_names(&std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap());
    let dashboard = std::fs::read_to_string(repo("deploy/grafana/dte-gateway.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    used.extend(metric_names(&dashboard));
    assert!(used.len() >= 15, "{used:?}");
    let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(n.as_str())).collect();
    assert!(unknown.is_empty(), "not exported by the service: {unknown:?}");
    // The alerts this gateway promises operators.
    let rules = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap();
    for alert in [
        "DteSiiRejectionRatioHigh",
        "DteSiiCircuitOpen",
        "DteSiiUnreachable",
        "DteUnsentBacklogOld",
        "DteSiiTokenFailures",
        "DteFoliosRunningOut",
        "DteCafExpiringSoon",
        "DteCertificateExpiringSoon",
        "DteIssuanceLatencyHigh",
        "DteHttp5xxRatioHigh",
        "DteRedisFallbackActive",
        "DteReceivedDeadlineNear",
        "DteMailboxPollFailing",
        "DteIssuedDocumentClaimed",
        "DteBuyerDeliveriesFailing",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert} missing");
    }
}

#[test]
fn prometheus_config_checks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(repo("deploy/prometheus/prometheus.yml"))
        .unwrap()
        .replace("/etc/prometheus/alerts.yml", &repo("deploy/prometheus/alerts.yml").display().to_string());
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, cfg).unwrap();
    let o = Command::new("promtool").args(["check", "config"]).arg(&path).output().expect("promtool");
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn compose_file_validates_without_a_container_engine() {
    let o = Command::new("docker-compose")
        .args(["-f", "deploy/docker-compose.yml", "config", "-q"])
        .current_dir(repo("."))
        .env("DTE_GATEWAY_MASTER_KEY", "placeholder-for-validation")
        .output()
        .expect("docker-compose is required (apt-get install docker-compose)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let services = Command::new("docker-compose")
        .args(["-f", "deploy/docker-compose.yml", "config", "--services"])
        .current_dir(repo("."))
        .env("DTE_GATEWAY_MASTER_KEY", "x")
        .output()
        .unwrap();
    let services = String::from_utf8_lossy(&services.stdout);
    for s in ["gateway", "postgres", "redis", "prometheus", "alertmanager", "grafana"] {
        assert!(services.lines().any(|l| l.trim() == s), "{s} missing from {services}");
    }
}

#[test]
fn kubernetes_manifests_parse_and_carry_probes() {
    let script = r#"
import sys, yaml, json
out = []
for f in sys.argv[1:]:
    out += [d for d in yaml.safe_load_all(open(f)) if d]
print(json.dumps(out))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(repo("deploy/k8s/gateway.yml"))
        .arg(repo("deploy/k8s/secret.example.yml"))
        .output()
        .expect("python3 with PyYAML is required");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for k in ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "Secret"] {
        assert!(kinds.contains(k), "{k} missing: {kinds:?}");
    }
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health/live");
    let unit = std::fs::read_to_string(repo("deploy/systemd/dte-gateway.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/dte-gateway serve") && unit.contains("[Install]"));
}

/// A fresh instance (a company set up through another one; no request to this one yet) already
/// exports every series the alert rules and the dashboard read: a rate over "no data" cannot be
/// told from a dead target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_rules_and_dashboards_read_exists_before_any_traffic() {
    let sim = common::sim::SimProcess::start(&[]);
    let link = [
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SII_BOLETA_API_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_SII_BOLETA_ENVIO_URL_CERTIFICACION", sim.base.as_str()),
    ];
    let g = common::gateway::Gateway::start(common::server::sqlite(), 1, &[], 10).await;
    let server = common::server::Server::start(&g.db, &link);
    let mut used = metric_names(&std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap());
    used.extend(metric_names(&std::fs::read_to_string(repo("deploy/grafana/dte-gateway.json")).unwrap()));
    // The background gauges are read at start; give them a moment.
    let start = std::time::Instant::now();
    loop {
        let scrape = reqwest::get(server.metrics_url()).await.unwrap().text().await.unwrap();
        let present = |name: &str| {
            scrape.lines().any(|l| {
                !l.starts_with('#')
                    && [name.to_string(), format!("{name}_bucket"), format!("{name}_count")]
                        .iter()
                        .any(|n| l.starts_with(&format!("{n}{{")) || l.starts_with(&format!("{n} ")))
            })
        };
        let missing: Vec<&String> = used.iter().filter(|n| !present(n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "missing before any traffic: {missing:?}\n{scrape}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
