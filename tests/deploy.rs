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
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert} missing");
    }
}
