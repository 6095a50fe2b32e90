//! Webhook deliveries: each state change of a company's documents is POSTed to its URLs, signed
//! HMAC-SHA256 over `{timestamp}.{body}` (headers `X-DTE-Timestamp`, `X-DTE-Signature: v1=…`), so
//! receivers can check it and refuse replays; failures retry with backoff, and every outcome is kept.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

pub const MAX_ATTEMPTS: i64 = 8;

/// `v1=` hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let sig = (|| {
        let key = PKey::hmac(secret.as_bytes())?;
        let mut s = Signer::new(MessageDigest::sha256(), &key)?;
        s.update(format!("{timestamp}.{body}").as_bytes())?;
        s.sign_to_vec()
    })()
    .unwrap_or_default();
    format!("v1={}", crate::crypto::hex(&sig))
}

pub async fn run(svc: Arc<crate::service::Service>, http: reqwest::Client, interval: Duration) {
    loop {
        match deliver_one(&svc, &http).await {
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
) -> Result<bool, crate::service::ServiceError> {
    let Some(d) = svc.lease_delivery(Utc::now(), chrono::Duration::seconds(30)).await? else { return Ok(false) };
    let ts = Utc::now().timestamp();
    let sent = http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-dte-timestamp", ts.to_string())
        .header("x-dte-signature", signature(&d.secret, ts, &d.event))
        .header("x-dte-delivery", d.id.to_string())
        .body(d.event.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let (ok, status) = match sent {
        Ok(r) => (r.status().is_success(), r.status().as_u16().to_string()),
        Err(e) => (false, format!("error: {e}")),
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
