//! `dte-gateway doctor`: checks a deployment the way an operator would, one line per check with
//! what to do, changing nothing (no migration applied, no key recorded). Exit 1 when anything is
//! wrong.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;

use dte_gateway::config::Settings;
use dte_gateway::domain::Environment;
use dte_gateway::server;
use dte_gateway::service::Service;
use dte_gateway::store::Store;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, level: Level, check: &str, detail: impl AsRef<str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => {
                self.failed = true;
                "FAIL"
            }
        };
        println!("{tag} {check}: {}", detail.as_ref());
    }
}

/// Days below which a certificate or CAF expiry is a warning.
const SOON_DAYS: i64 = 30;

pub async fn run(config: &Option<PathBuf>) -> bool {
    let mut r = Report { failed: false };
    let s = match Settings::load(config.clone()) {
        Ok(s) => {
            r.line(Level::Ok, "configuration", format!("loaded (database {})", shown(&s.database())));
            s
        }
        Err(e) => {
            r.line(Level::Fail, "configuration", format!("{e} — fix the file or the DTE_GATEWAY_* variables"));
            return false;
        }
    };

    // The database, without touching its schema (nor creating an embedded one that is not there).
    if let Some(path) = s.database().strip_prefix("sqlite://") {
        if !std::path::Path::new(path).exists() {
            r.line(
                Level::Fail,
                "database",
                format!("{path} does not exist — check data_dir / database_url, or start the service once"),
            );
            return false;
        }
    }
    let store = match Store::connect(&s.database(), 2) {
        Ok(st) => st,
        Err(e) => {
            r.line(Level::Fail, "database", format!("{e} — check database_url"));
            return false;
        }
    };
    if let Err(e) = store.ping().await {
        r.line(Level::Fail, "database", format!("{e} — is the database running and reachable from here?"));
        return false;
    }
    r.line(Level::Ok, "database", format!("{} answers", store.backend()));
    match store.migrate(true).await {
        Ok(m) if m.applied.is_empty() => {
            r.line(Level::Ok, "migrations", format!("schema version {}, up to date", m.version))
        }
        Ok(m) => r.line(
            Level::Warn,
            "migrations",
            format!(
                "schema version {}; {} to apply — run `dte-gateway migrate` (or start the service)",
                m.version,
                m.applied.len()
            ),
        ),
        Err(e) => {
            r.line(Level::Fail, "migrations", format!("{e} — a newer release migrated this database, or it is damaged"))
        }
    }

    // The master key against the database's check value.
    let vault = match server::master_key_for(&s) {
        Ok(v) => v,
        Err(e) => {
            r.line(Level::Fail, "master key", format!("{e}"));
            return false;
        }
    };
    match store.key_check_value().await {
        Ok(Some(v)) if v == vault.check_value() => {
            r.line(Level::Ok, "master key", "matches the database's check value")
        }
        Ok(Some(_)) => r.line(
            Level::Fail,
            "master key",
            "does not match the one the database was sealed with — start with that key (or finish the rotation)",
        ),
        Ok(None) => {
            r.line(Level::Warn, "master key", "the database has no check value yet — it is recorded at the first start")
        }
        Err(_) => r.line(Level::Warn, "master key", "cannot read the check value (schema not up to date?)"),
    }

    // Redis, when the cache or the batch queue uses it: every URL answers PING.
    if s.cache_mode != "memory" || s.queue_mode == "redis" {
        for url in &s.redis_urls {
            match ping_redis(url).await {
                Ok(()) => r.line(Level::Ok, "redis", format!("{} answers", shown(url))),
                Err(e) => r.line(
                    Level::Fail,
                    "redis",
                    format!("{} does not answer ({e}) — the cache falls back to memory and batches stop", shown(url)),
                ),
            }
        }
    }

    // Each company's certificate and CAF stock.
    let trust = match server::trust_of(&s, false) {
        Ok(t) => t,
        Err(e) => {
            r.line(Level::Fail, "CAF authority", format!("{e}"));
            return false;
        }
    };
    let svc = Service::new(store, vault, trust, chrono::Duration::seconds(s.key_rotation_grace_seconds));
    let environments = companies(&svc, &mut r).await;

    // The SII (or the simulator) answers, for the environments the companies use.
    if s.sii_workers {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build();
        let mut endpoints = Vec::new();
        if environments.contains(&Environment::Certificacion) {
            endpoints.push(("SII certificación", &s.sii_url_certificacion));
            endpoints.push(("SII boletas certificación", &s.sii_boleta_api_url_certificacion));
        }
        if environments.contains(&Environment::Produccion) {
            endpoints.push(("SII producción", &s.sii_url_produccion));
            endpoints.push(("SII boletas producción", &s.sii_boleta_api_url_produccion));
        }
        for (name, url) in endpoints {
            let answer = match &http {
                Ok(h) => h.get(url.as_str()).send().await.map(|resp| resp.status().as_u16()),
                Err(_) => continue,
            };
            match answer {
                Ok(code) => r.line(Level::Ok, name, format!("{url} answers (HTTP {code})")),
                Err(e) => r.line(
                    Level::Fail,
                    name,
                    format!("{url} does not answer ({}) — check egress and the URL", e.without_url()),
                ),
            }
        }
    }
    !r.failed
}

/// A connection URL without its credentials or parameters.
fn shown(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('?').next().unwrap_or(host);
    if scheme.is_empty() {
        host.to_string()
    } else {
        format!("{scheme}://{host}")
    }
}

async fn ping_redis(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut c = tokio::time::timeout(Duration::from_secs(3), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let pong: String = redis::cmd("PING").query_async(&mut c).await.map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("answered {pong}"))
    }
}

/// Checks every company; returns the SII environments they use.
async fn companies(svc: &Service, r: &mut Report) -> Vec<Environment> {
    let mut environments = Vec::new();
    let list = match svc.companies().await {
        Ok(l) => l,
        Err(e) => {
            r.line(Level::Fail, "companies", format!("{e}"));
            return environments;
        }
    };
    if list.is_empty() {
        r.line(Level::Warn, "companies", "none registered yet — POST /v1/companies");
    }
    let now = Utc::now();
    for rut in list {
        if let Ok(c) = svc.company(&rut).await {
            if !environments.contains(&c.environment) {
                environments.push(c.environment);
            }
        }
        match svc.certificate_info(&rut).await {
            Ok(c) if c.not_after <= now => r.line(
                Level::Fail,
                &format!("{rut} certificate"),
                format!("expired on {} — PUT a new one to /v1/companies/{rut}/certificate", c.not_after.date_naive()),
            ),
            Ok(c) if (c.not_after - now).num_days() < SOON_DAYS => r.line(
                Level::Warn,
                &format!("{rut} certificate"),
                format!("expires on {} — renew it", c.not_after.date_naive()),
            ),
            Ok(c) => {
                r.line(Level::Ok, &format!("{rut} certificate"), format!("valid until {}", c.not_after.date_naive()))
            }
            Err(e) => r.line(Level::Fail, &format!("{rut} certificate"), format!("{e}")),
        }
        let cafs = match svc.list_cafs(&rut).await {
            Ok(c) => c,
            Err(e) => {
                r.line(Level::Fail, &format!("{rut} CAFs"), format!("{e}"));
                continue;
            }
        };
        let mut tipos: Vec<i32> = cafs.iter().map(|c| c.tipo).collect();
        tipos.sort_unstable();
        tipos.dedup();
        for tipo in tipos {
            let usable: Vec<_> = cafs.iter().filter(|c| c.tipo == tipo && c.usable() && c.folios_left > 0).collect();
            let left: i64 = usable.iter().map(|c| c.folios_left).sum();
            let check = format!("{rut} CAF T{tipo}");
            if left == 0 {
                r.line(Level::Fail, &check, "no usable folios — request a CAF at the SII and POST it");
            } else if let Some(exp) = usable.iter().filter_map(|c| c.expires_on).min() {
                let days = (exp - now.date_naive()).num_days();
                let level = if days < SOON_DAYS { Level::Warn } else { Level::Ok };
                r.line(level, &check, format!("{left} folios left; the first CAF expires on {exp}"));
            } else {
                r.line(Level::Ok, &check, format!("{left} folios left"));
            }
        }
    }
    environments
}
