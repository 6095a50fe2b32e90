//! Webhook deliveries: each state change of a company's documents is POSTed to its URLs, signed
//! HMAC-SHA256 over `{timestamp}.{body}` (headers `X-DTE-Timestamp`, `X-DTE-Signature: v1=…`), so
//! receivers can check it and refuse replays; failures retry with backoff, and every outcome is kept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use chrono::Utc;

use crate::netguard::{literal_ip, TargetPolicy};
use crate::otel::Traced;

pub const MAX_ATTEMPTS: i64 = 8;

/// Resolves receivers' names and keeps only the addresses the policy allows. The connection is
/// made to exactly these addresses, so a name that resolves to a public address when registered
/// and to an internal one later (DNS rebinding) is refused when it matters.
struct GuardedResolver {
    policy: TargetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(NotAllowed(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to no public address")]
struct NotAllowed(String);

/// The HTTP client for webhook deliveries: the guarded resolver, no redirects (a receiver that
/// answers 3xx is a failed delivery), no proxy from the environment (it would resolve the names
/// itself).
pub fn client(policy: TargetPolicy) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent("dte-gateway-webhooks")
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .connect_timeout(Duration::from_secs(5))
        .build()
}

/// A receiver's URL as it may be logged: scheme, host and path (a query may carry a token).
fn loggable(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}{}", u.scheme(), u.host_str().unwrap_or_default(), u.path()),
        Err(_) => "(unparsable)".into(),
    }
}

/// What the tenant sees of a failed attempt: coarse, so the deliveries list cannot be used to map
/// a network. The detail goes to the log.
fn outcome(e: &reqwest::Error) -> &'static str {
    use std::error::Error;
    let mut src: Option<&dyn Error> = e.source();
    while let Some(s) = src {
        if s.is::<NotAllowed>() {
            return "address not allowed";
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connection refused";
            }
        }
        src = s.source();
    }
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// `v1=` hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let signed = format!("{timestamp}.{body}");
    format!("v1={}", crate::crypto::hex(&crate::crypto::hmac_sha256(secret.as_bytes(), &[signed.as_bytes()])))
}

pub async fn run(svc: Arc<crate::service::Service>, http: reqwest::Client, interval: Duration) {
    loop {
        match deliver_one(&svc, &http, svc.webhook_policy).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(interval).await,
            Err(e) => {
                tracing::warn!(error = %e, "webhook round failed");
                tokio::time::sleep(interval).await;
            }
        }
    }
}

/// Delivers one due event; false when none was due.
pub async fn deliver_one(
    svc: &crate::service::Service,
    http: &reqwest::Client,
    policy: TargetPolicy,
) -> Result<bool, crate::service::ServiceError> {
    let Some(d) = svc.lease_delivery(Utc::now(), chrono::Duration::seconds(30)).await? else { return Ok(false) };
    let ts = Utc::now().timestamp();
    // An address in the URL never reaches the resolver: checked here (the policy may have
    // narrowed since the webhook was registered).
    let checked = policy.check_url(&d.url).map(|u| literal_ip(&u).is_none_or(|ip| policy.allows(ip)));
    if !matches!(checked, Ok(true)) {
        tracing::warn!(delivery = d.id, receiver = %loggable(&d.url), "webhook receiver not allowed by the target policy");
        svc.delivery_outcome(d.id, "failed", "address not allowed", Utc::now()).await?;
        return Ok(true);
    }
    let sent = http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-dte-timestamp", ts.to_string())
        .header("x-dte-signature", signature(&d.secret, ts, &d.event))
        .header("x-dte-delivery", d.id.to_string())
        .body(d.event.clone())
        .timeout(Duration::from_secs(10))
        .traced()
        .send()
        .await;
    let (ok, status) = match sent {
        Ok(r) => (r.status().is_success(), r.status().as_u16().to_string()),
        Err(e) => {
            let coarse = outcome(&e);
            tracing::warn!(delivery = d.id, receiver = %loggable(&d.url), error = %e.without_url(), "webhook delivery failed");
            (false, coarse.to_string())
        }
    };
    let attempts = d.attempts + 1;
    let (state, next) = if ok {
        ("done", Utc::now())
    } else if attempts >= MAX_ATTEMPTS {
        ("failed", Utc::now())
    } else {
        ("pending", Utc::now() + chrono::Duration::milliseconds(250 * (1i64 << attempts.min(10))))
    };
    metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "outcome" => if ok { "delivered" } else { "failed" })
        .increment(1);
    svc.delivery_outcome(d.id, state, &status, next).await?;
    Ok(true)
}
