//! Background work of every instance: the sender packs issued documents into envelopes and uploads
//! them, the tracker follows each upload to its verdict, and webhooks tell companies of every state
//! change. Work is leased in the store, so any number of instances share it and a crashed instance's
//! work is picked up when its lease ends.

pub mod breaker;
pub mod exchange;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::domain::Environment;
use crate::domain::Rut;
use crate::domain::{DocState, UploadStatus};
use crate::service::{now_local, Service};
use crate::service::{ServiceError, Upload as Job, Verdict};
use crate::sii::api::SiiApi;
use crate::sii::client::{SiiError, Upload, UploadState};
use crate::sii::tokens::Tokens;
use breaker::Breaker;

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// An envelope goes when it has this many documents…
    pub max_docs: i64,
    /// …or its oldest document has waited this long.
    pub max_age: Duration,
    /// Pause between rounds when there is nothing to do.
    pub interval: Duration,
    /// How long an instance holds an upload it works on.
    pub lease: Duration,
    /// First retry delay; doubles per attempt up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Delay between QueryEstUp polls of one upload.
    pub track_every: Duration,
    /// In certificación, boletas go by DTEUpload (SOAP) as DTE do, not by the boleta REST API: the
    /// SII's boleta certification set only sees uploads made that way.
    pub boletas_by_dteupload_certificacion: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            max_docs: 50,
            max_age: Duration::from_secs(2),
            interval: Duration::from_millis(200),
            lease: Duration::from_secs(60),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            track_every: Duration::from_millis(500),
            boletas_by_dteupload_certificacion: false,
        }
    }
}

pub struct SiiLink {
    pub svc: Arc<Service>,
    pub tokens: Arc<Tokens>,
    /// Per environment, the SOAP API (`false`) and the boleta REST API (`true`).
    clients: HashMap<(Environment, bool), SiiApi>,
    pub breakers: HashMap<(Environment, bool), Arc<Breaker>>,
    cfg: LinkConfig,
}

type Context<'a> = (crate::service::CompanyInfo, Arc<crate::cert::Certificate>, &'a SiiApi, &'a Arc<Breaker>, String);

fn chrono_d(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(60))
}

impl SiiLink {
    pub fn new(
        svc: Arc<Service>,
        tokens: Arc<Tokens>,
        clients: HashMap<(Environment, bool), SiiApi>,
        breaker: (u32, Duration),
        cfg: LinkConfig,
    ) -> Arc<SiiLink> {
        let breakers =
            clients.iter().map(|(k, c)| (*k, Arc::new(Breaker::new(c.host(), breaker.0, breaker.1)))).collect();
        Arc::new(SiiLink { svc, tokens, clients, breakers, cfg })
    }

    /// The SOAP client of an environment (seed and token for the other SII services).
    pub fn soap_client(&self, env: Environment) -> Option<SiiApi> {
        self.clients.get(&(env, false)).cloned()
    }

    /// Back to `pending`, tried again after the backoff its attempts have earned.
    async fn retry_later(&self, u: &Job, envelope: Option<Vec<u8>>, why: &str) -> Result<(), ServiceError> {
        self.svc.upload_later(u.id, UploadStatus::Pending, envelope, why, Utc::now() + self.backoff(u.attempts)).await
    }

    fn backoff(&self, attempts: i64) -> chrono::Duration {
        let factor = 1u32 << attempts.clamp(0, 10) as u32;
        chrono_d((self.cfg.backoff * factor).min(self.cfg.max_backoff))
    }

    /// Fetches (or reads from the shared cache) the tokens of companies that issued in the last
    /// day, so the first upload after a start does not wait for the SII.
    pub async fn warm(&self) {
        let since = Utc::now() - chrono::Duration::days(1);
        let Ok(active) = self.svc.active_companies(since).await else { return };
        for (company, boleta) in active {
            if let Ok((_, cert, client, breaker, env)) = self.context(&company, boleta).await {
                if breaker.allow() {
                    match self.tokens.get(&env, &cert, client).await {
                        Ok(_) => breaker.success(),
                        Err(e) => {
                            breaker.failure();
                            tracing::warn!(company, error = %e, "could not warm the SII token");
                        }
                    }
                }
            }
        }
    }

    /// Runs forever: claim, send, track.
    pub async fn run(self: Arc<Self>) {
        self.warm().await;
        loop {
            let busy = match self.round().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "SII link round failed");
                    false
                }
            };
            if !busy {
                tokio::time::sleep(self.cfg.interval).await;
            }
        }
    }

    /// One round; true when it did something.
    pub async fn round(&self) -> Result<bool, ServiceError> {
        let store = &self.svc;
        let now = Utc::now();
        let mut busy = false;
        while store.claim_upload(self.cfg.max_docs, now - chrono_d(self.cfg.max_age), now).await?.is_some() {
            busy = true;
        }
        let lease = chrono_d(self.cfg.lease);
        if let Some(u) = store.lease_upload(&[UploadStatus::New, UploadStatus::Pending], Utc::now(), lease).await? {
            // The upload continues the trace its documents were issued in, on whichever instance.
            let span =
                tracing::info_span!("upload", upload = u.id, company = %u.company, trace_id = tracing::field::Empty);
            let parent = store.upload_trace(u.id).await.ok().flatten();
            crate::otel::adopt(&span, parent.as_deref());
            tracing::Instrument::instrument(self.send(u), span).await?;
            busy = true;
        }
        if let Some(u) = store.lease_upload(&[UploadStatus::Sent], Utc::now(), lease).await? {
            self.track(u).await?;
            busy = true;
        }
        Ok(busy)
    }

    /// The company, its certificate, and the API and circuit for its environment and kind.
    async fn context(&self, company: &str, boleta: bool) -> Result<Context<'_>, String> {
        let rec = self.svc.company(company).await.map_err(|e| e.to_string())?;
        let cert = self.svc.certificate(company).await.map_err(|e| e.to_string())?;
        let rest =
            boleta && !(rec.environment == Environment::Certificacion && self.cfg.boletas_by_dteupload_certificacion);
        let key = (rec.environment, rest);
        let client = self.clients.get(&key).ok_or("no SII client for the environment")?;
        let breaker = self.breakers.get(&key).ok_or("no breaker for the environment")?;
        // The boleta API issues its own tokens.
        let token_env =
            if rest { format!("{}-boleta", rec.environment.as_str()) } else { rec.environment.as_str().to_string() };
        Ok((rec, cert, client, breaker, token_env))
    }

    async fn send(&self, u: Job) -> Result<(), ServiceError> {
        let store = &self.svc;
        let (rec, cert, client, breaker, env) = match self.context(&u.company, u.boleta).await {
            Ok(c) => c,
            Err(e) => return self.retry_later(&u, None, &e).await,
        };
        if !breaker.allow() {
            return store
                .upload_later(
                    u.id,
                    UploadStatus::Pending,
                    None,
                    "SII circuit open",
                    Utc::now() + chrono_d(breaker.retry_in().max(Duration::from_millis(100))),
                )
                .await;
        }
        let envelope = match u.envelope.clone() {
            Some(e) => e,
            None => {
                let docs: Vec<Vec<u8>> = store.upload_documents(u.id).await?.into_iter().map(|(_, _, x)| x).collect();
                let (company, cert2) = (rec.company.clone(), cert.clone());
                let built = tokio::task::spawn_blocking(move || {
                    crate::sii::envelope::build(&company, &cert2, Rut::SII, &docs, now_local())
                })
                .await;
                match built {
                    Ok(Ok(b)) => b,
                    Ok(Err(e)) => return self.reject_all(&u, "envelope", &e.to_string()).await,
                    Err(e) => return self.retry_later(&u, None, &e.to_string()).await,
                }
            }
        };
        let env = env.as_str();
        let token = match self.tokens.get(env, &cert, client).await {
            Ok(t) => t,
            Err(e) => {
                breaker.failure();
                return self.retry_later(&u, Some(envelope), &e.to_string()).await;
            }
        };
        let (Some(sender), Ok(company)) = (cert.holder, rec.rut.parse::<Rut>()) else {
            return self.reject_all(&u, "certificate", "the certificate has no holder RUT").await;
        };
        let name = format!("{}_{}.xml", rec.rut, u.id);
        match client.upload(&token, sender, company, &name, envelope.clone()).await {
            Ok(Upload::Received(track)) => {
                metrics::counter!(crate::telemetry::SII_UPLOADS, "outcome" => "received").increment(1);
                breaker.success();
                tracing::info!(upload = u.id, track = %track, "envelope received by the SII");
                store.upload_sent(u.id, envelope, &track, Utc::now() + chrono_d(self.cfg.track_every)).await
            }
            Ok(Upload::Reauthenticate) => {
                metrics::counter!(crate::telemetry::SII_UPLOADS, "outcome" => "reauthenticate").increment(1);
                breaker.success();
                self.tokens.invalidate(env, &cert, &token).await;
                store
                    .upload_later(u.id, UploadStatus::Pending, Some(envelope), "token refused (STATUS 5)", Utc::now())
                    .await
            }
            Ok(Upload::Retry(why)) => {
                metrics::counter!(crate::telemetry::SII_UPLOADS, "outcome" => "retry").increment(1);
                breaker.failure();
                self.retry_later(&u, Some(envelope), &why).await
            }
            Ok(Upload::Rejected { status, detail }) => {
                metrics::counter!(crate::telemetry::SII_UPLOADS, "outcome" => "rejected").increment(1);
                breaker.success();
                self.reject_all(&u, &format!("STATUS {status}"), &detail.join("; ")).await
            }
            Err(e) => {
                if e.retryable() {
                    breaker.failure();
                }
                self.retry_later(&u, Some(envelope), &e.to_string()).await
            }
        }
    }

    async fn reject_all(&self, u: &Job, estado: &str, glosa: &str) -> Result<(), ServiceError> {
        let docs = self.svc.upload_documents(u.id).await?;
        let verdicts = docs
            .iter()
            .map(|(t, f, _)| Verdict {
                tipo: *t,
                folio: *f,
                state: DocState::Rejected,
                estado: estado.into(),
                glosa: glosa.into(),
            })
            .collect();
        tracing::warn!(upload = u.id, estado, glosa, "envelope rejected");
        metrics::counter!(crate::telemetry::SII_VERDICTS, "estado" => estado.to_string()).increment(1);
        self.svc.upload_final(u.id, UploadStatus::Rejected, estado, glosa, verdicts, Utc::now()).await
    }

    async fn track(&self, u: Job) -> Result<(), ServiceError> {
        let store = &self.svc;
        let later = |why: String, attempts: i64| async move {
            store
                .upload_later(
                    u.id,
                    UploadStatus::Sent,
                    None,
                    &why,
                    Utc::now() + self.backoff(attempts.min(4)).max(chrono_d(self.cfg.track_every)),
                )
                .await
        };
        let (rec, cert, client, breaker, env) = match self.context(&u.company, u.boleta).await {
            Ok(c) => c,
            Err(e) => return later(e, u.attempts).await,
        };
        if !breaker.allow() {
            return later("SII circuit open".into(), u.attempts).await;
        }
        let env = env.as_str();
        let Some(track) = u.track_id.clone() else { return later("no TrackID".into(), u.attempts).await };
        let token = match self.tokens.get(env, &cert, client).await {
            Ok(t) => t,
            Err(e) => {
                breaker.failure();
                return later(e.to_string(), u.attempts).await;
            }
        };
        let Ok(company) = rec.rut.parse::<Rut>() else { return later("company RUT".into(), u.attempts).await };
        let state = client.query_upload(&token, company, &track).await;
        match state {
            Ok(UploadState::Pending(estado)) => {
                breaker.success();
                store
                    .upload_later(u.id, UploadStatus::Sent, None, &estado, Utc::now() + chrono_d(self.cfg.track_every))
                    .await
            }
            Ok(UploadState::Reauthenticate) => {
                breaker.success();
                self.tokens.invalidate(env, &cert, &token).await;
                store.upload_later(u.id, UploadStatus::Sent, None, "token refused", Utc::now()).await
            }
            Ok(UploadState::Rejected { estado, glosa }) => {
                breaker.success();
                self.reject_all(&u, &estado, &glosa).await
            }
            Ok(UploadState::Processed { estado, glosa, rechazados, reparos, .. }) => {
                breaker.success();
                let docs = store.upload_documents(u.id).await?;
                let mut verdicts = Vec::with_capacity(docs.len());
                for (tipo, folio, xml) in &docs {
                    let (state, e, g) = if rechazados == 0 && reparos == 0 {
                        (DocState::Accepted, estado.clone(), glosa.clone())
                    } else {
                        // Mixed verdicts: ask about each document.
                        match self.ask_document(client, &token, &cert, company, *tipo, *folio, xml).await {
                            Ok(s) if s.estado == "DOK" && reparos > 0 => {
                                (DocState::AcceptedWithObjections, s.estado, s.glosa)
                            }
                            Ok(s) if s.estado == "DOK" => (DocState::Accepted, s.estado, s.glosa),
                            Ok(s) => (DocState::Rejected, s.estado, s.glosa),
                            Err(e) => return later(e.to_string(), u.attempts).await,
                        }
                    };
                    verdicts.push(Verdict { tipo: *tipo, folio: *folio, state, estado: e, glosa: g });
                }
                tracing::info!(upload = u.id, track = %track, %estado, "upload processed");
                metrics::counter!(crate::telemetry::SII_VERDICTS, "estado" => estado.clone()).increment(1);
                store.upload_final(u.id, UploadStatus::Final, &estado, &glosa, verdicts, Utc::now()).await
            }
            Err(e) => {
                if e.retryable() {
                    breaker.failure();
                }
                later(e.to_string(), u.attempts).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn ask_document(
        &self,
        client: &SiiApi,
        token: &str,
        cert: &crate::cert::Certificate,
        company: Rut,
        tipo: i32,
        folio: i64,
        xml: &[u8],
    ) -> Result<crate::sii::client::DteState, SiiError> {
        let text = String::from_utf8_lossy(xml);
        let field = |name: &str| {
            text.split(&format!("<{name}>")).nth(1).and_then(|r| r.split('<').next()).unwrap_or("").to_string()
        };
        let receptor: Rut = field("RUTRecep").parse().unwrap_or(Rut::ANONYMOUS);
        let fecha = chrono::NaiveDate::parse_from_str(&field("FchEmis"), "%Y-%m-%d").unwrap_or_default();
        let monto: i64 = field("MntTotal").parse().unwrap_or(0);
        let consultante = cert.holder.unwrap_or(company);
        client.query_document(token, consultante, company, receptor, tipo as u16, folio as u64, fecha, monto).await
    }

    /// `POST …/sii-status`: asks QueryEstDte now and records the answer.
    pub async fn document_status(
        &self,
        company: &str,
        tipo: i32,
        folio: i64,
    ) -> Result<crate::sii::client::DteState, String> {
        let (rec, cert, client, breaker, env) = self.context(company, matches!(tipo, 39 | 41)).await?;
        if !breaker.allow() {
            return Err("SII circuit open".into());
        }
        let xml = self.svc.document_xml(company, tipo, folio).await.map_err(|e| e.to_string())?;
        let token = self.tokens.get(&env, &cert, client).await.map_err(|e| e.to_string())?;
        let rut: Rut = rec.rut.parse().map_err(|e: crate::domain::rut::RutError| e.to_string())?;
        let s = self.ask_document(client, &token, &cert, rut, tipo, folio, &xml).await;
        match &s {
            Ok(_) => breaker.success(),
            Err(e) if e.retryable() => breaker.failure(),
            Err(_) => {}
        }
        let s = s.map_err(|e| e.to_string())?;
        let state = match s.estado.as_str() {
            "DOK" => Some(DocState::Accepted),
            "DNK" | "FAN" | "FNA" | "EMP" => Some(DocState::Rejected),
            _ => None,
        };
        if let Some(state) = state {
            let v = Verdict { tipo, folio, state, estado: s.estado.clone(), glosa: s.glosa.clone() };
            self.svc.set_document_sii_state(company, v, Utc::now()).await.map_err(|e| e.to_string())?;
        }
        Ok(s)
    }
}
