//! The receiving side's I/O: exchange mailboxes polled over IMAP (leased, one instance per mailbox
//! at a time), answers mailed to suppliers over SMTP (leased, retried with backoff), the RCV web
//! service (decisions, reception dates, event history) with the shared SII token, and the 8-day
//! deadlines (warnings, then acceptance by law).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use crate::domain::{Environment, Rut};
use crate::exchange::rcv::{self, Registered};
use crate::service::{DecisionBody, MailboxAccess, ReceivedInfo, Service, ServiceError};
use crate::sii::api::SiiApi;
use crate::sii::rcv::{RcvAnswer, RcvClient, RcvError};
use crate::sii::tokens::Tokens;
use crate::telemetry::{EXCHANGE_MAILS, MAILBOX_POLLS, RCV_CALLS};

mod delivery;

/// The largest message read from a mailbox.
const MAX_MESSAGE: usize = 25 << 20;

#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    pub interval: Duration,
    /// How long an instance holds a mailbox it polls, or an answer it sends.
    pub lease: chrono::Duration,
    pub deadline_warning: chrono::Duration,
    pub rcv_recheck: chrono::Duration,
    /// Tries of an RCV call that failed or answered −1.
    pub rcv_tries: u32,
    pub rcv_backoff: Duration,
    /// Tries of an SMTP delivery before it is `failed`.
    pub mail_tries: i64,
    pub mail_backoff: chrono::Duration,
    pub imap_timeout: Duration,
    /// Follow the RCV's history of issued 33/34/43 until their window closes.
    pub track_issued: bool,
    /// Which mail servers tenants' mailboxes may point at.
    pub mail_policy: crate::netguard::TargetPolicy,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            interval: Duration::from_secs(1),
            lease: chrono::Duration::seconds(120),
            deadline_warning: chrono::Duration::days(2),
            rcv_recheck: chrono::Duration::hours(1),
            rcv_tries: 3,
            rcv_backoff: Duration::from_millis(300),
            mail_tries: 8,
            mail_backoff: chrono::Duration::seconds(30),
            imap_timeout: Duration::from_secs(60),
            track_issued: true,
            mail_policy: crate::netguard::TargetPolicy::default(),
        }
    }
}

pub struct Exchange {
    pub svc: Arc<Service>,
    /// The SII link's tokens and SOAP clients (for authentication); absent when it is off.
    tokens: Option<Arc<Tokens>>,
    auth: HashMap<Environment, SiiApi>,
    rcv: HashMap<Environment, RcvClient>,
    cfg: ExchangeConfig,
}

/// A mailbox server's `scheme://host[:port]`: whether the scheme is the encrypted one, the host,
/// and the port (by default the scheme's: `ports` is (encrypted, plain)).
fn server_of(url: &str, encrypted: &str, ports: (u16, u16)) -> Result<(bool, String, u16), String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("bad server URL {url:?}"))?;
    let tls = scheme == encrypted;
    match rest.rsplit_once(':') {
        Some((h, p)) => Ok((tls, h.to_string(), p.parse::<u16>().map_err(|_| format!("bad port in {url:?}"))?)),
        None => Ok((tls, rest.to_string(), if tls { ports.0 } else { ports.1 })),
    }
}

/// The metric label of a mail's state after an attempt.
fn mail_outcome(state: &str) -> &'static str {
    match state {
        "sent" => "sent",
        "failed" => "failed",
        _ => "retry",
    }
}

fn count(op: &'static str, outcome: &'static str) {
    metrics::counter!(RCV_CALLS, "operation" => op, "outcome" => outcome).increment(1);
}

impl Exchange {
    pub fn new(
        svc: Arc<Service>,
        tokens: Option<Arc<Tokens>>,
        auth: HashMap<Environment, SiiApi>,
        rcv: HashMap<Environment, RcvClient>,
        cfg: ExchangeConfig,
    ) -> Arc<Exchange> {
        Arc::new(Exchange { svc, tokens, auth, rcv, cfg })
    }

    /// One RCV operation for a company's received document: the shared token, re-authenticated
    /// once when the SII refuses it, retried on failures and on −1.
    async fn rcv_call(
        &self,
        company: &str,
        op: &'static str,
        call: impl Fn(RcvClient, String) -> futures_util::future::BoxFuture<'static, Result<RcvAnswer, RcvError>>,
    ) -> Result<RcvAnswer, ServiceError> {
        let info = self.svc.company(company).await?;
        let env = info.environment;
        let (Some(tokens), Some(auth), Some(client)) = (&self.tokens, self.auth.get(&env), self.rcv.get(&env)) else {
            return Err(ServiceError::SiiUnavailable("the SII link is off in this instance".into()));
        };
        let cert = self.svc.certificate(company).await?;
        let mut reauthenticated = false;
        let mut tries = 0;
        loop {
            tries += 1;
            let token = tokens
                .get(env.as_str(), &cert, auth)
                .await
                .map_err(|e| ServiceError::SiiUnavailable(format!("no SII token: {e}")))?;
            let r = call(client.clone(), token.clone()).await;
            match r {
                Ok(a) if a.cod == -1 && tries < self.cfg.rcv_tries => {
                    count(op, "retry");
                    tokio::time::sleep(self.cfg.rcv_backoff * tries).await;
                }
                Ok(a) if a.cod == -1 => {
                    count(op, "retry");
                    return Err(ServiceError::SiiUnavailable(format!("{op}: {}", rcv::cod_resp_description(-1))));
                }
                Ok(a) => return Ok(a),
                Err(RcvError::TokenRefused(why)) if !reauthenticated => {
                    count(op, "token_refused");
                    tracing::info!(company, op, why, "the SII refused the token; authenticating again");
                    tokens.invalidate(env.as_str(), &cert, &token).await;
                    reauthenticated = true;
                }
                Err(e) if e.retryable() && tries < self.cfg.rcv_tries => {
                    count(op, "failed");
                    tokio::time::sleep(self.cfg.rcv_backoff * tries).await;
                }
                Err(e) => {
                    count(op, if matches!(e, RcvError::TokenRefused(_)) { "token_refused" } else { "failed" });
                    return Err(ServiceError::SiiUnavailable(format!("{op}: {e}")));
                }
            }
        }
    }

    /// A decision on a received document: registered with the SII's RCV for 33, 34 and 43, then
    /// recorded with the answers for the supplier. The same decision twice is one decision.
    pub async fn decide(
        &self,
        company: &str,
        emisor: &str,
        tipo: i32,
        folio: i64,
        body: DecisionBody,
        by: &str,
    ) -> Result<ReceivedInfo, ServiceError> {
        let row = self.svc.received_row(company, emisor, tipo, folio).await?;
        self.svc.check_decision(&row, &body).await?;
        if row.decision.as_deref() == Some(body.accion.code()) {
            return self.svc.get_received(company, emisor, tipo, folio).await;
        }
        let answers = self.svc.prepare_answers(&row, &body).await?;
        let mut responsible = self.svc.certificate(company).await.ok().and_then(|c| c.holder).map(|r| r.to_string());
        if rcv::in_rcv(tipo as u16) {
            let em: Rut = row
                .rut_emisor
                .parse()
                .map_err(|e: crate::domain::rut::RutError| ServiceError::Internal(e.to_string()))?;
            let accion = body.accion;
            let op = "ingresarAceptacionReclamoDoc";
            let a = self
                .rcv_call(company, op, move |c, t| {
                    Box::pin(async move { c.ingresar(&t, em, tipo as u16, folio, accion).await })
                })
                .await?;
            match rcv::registered(a.cod, &a.desc) {
                Registered::Done { already } => {
                    count(op, if already { "already" } else { "ok" });
                }
                Registered::PastDeadline => {
                    count(op, "past_deadline");
                    let when = row
                        .deadline
                        .map(|d| crate::service::utc_to_local(d).format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "its 8th day".into());
                    return Err(ServiceError::PastDeadline(format!(
                        "the SII no longer takes decisions on this document: its 8-day window closed on {when} (codResp 8)"
                    )));
                }
                Registered::Retry => return Err(ServiceError::SiiUnavailable(rcv::cod_resp_description(-1).into())),
                Registered::Refused { code, description } => {
                    count(op, "refused");
                    return Err(ServiceError::Rcv { code, detail: description });
                }
            }
        } else {
            responsible = responsible.or(Some(company.to_string()));
        }
        self.svc.record_decision(&row, &body, responsible, answers, by).await?;
        self.svc.get_received(company, emisor, tipo, folio).await
    }

    /// Runs for ever: mailboxes, answers, RCV, deadlines.
    pub async fn run(self: Arc<Self>) {
        let mut last_deadlines = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            let mut busy = false;
            match self.poll_one().await {
                Ok(b) => busy |= b,
                Err(e) => tracing::warn!(error = %e, "mailbox round failed"),
            }
            match self.send_one().await {
                Ok(b) => busy |= b,
                Err(e) => tracing::warn!(error = %e, "answer round failed"),
            }
            match self.deliver_one().await {
                Ok(b) => busy |= b,
                Err(e) => tracing::warn!(error = %e, "delivery round failed"),
            }
            if self.tokens.is_some() {
                match self.rcv_round().await {
                    Ok(b) => busy |= b,
                    Err(e) => tracing::warn!(error = %e, "RCV round failed"),
                }
                if self.cfg.track_issued {
                    match self.issued_rcv_round().await {
                        Ok(b) => busy |= b,
                        Err(e) => tracing::warn!(error = %e, "issued documents' RCV round failed"),
                    }
                }
            }
            if last_deadlines.elapsed() >= self.cfg.interval.max(Duration::from_secs(5)) {
                last_deadlines = std::time::Instant::now();
                if let Err(e) = self.deadlines().await {
                    tracing::warn!(error = %e, "deadline round failed");
                }
            }
            if !busy {
                tokio::time::sleep(self.cfg.interval).await;
            }
        }
    }

    /// Polls one due mailbox; true when there was one.
    pub async fn poll_one(&self) -> Result<bool, ServiceError> {
        let Some(m) = self.svc.lease_mailbox(self.cfg.lease).await? else { return Ok(false) };
        tracing::debug!(company = m.company, url = m.imap_url, "polling the mailbox");
        let every = chrono::Duration::seconds(m.poll_seconds);
        let r = tokio::time::timeout(self.cfg.imap_timeout, self.poll(&m)).await;
        let error = match r {
            Ok(Ok(n)) => {
                if n > 0 {
                    tracing::info!(company = m.company, messages = n, "mailbox polled");
                }
                metrics::counter!(MAILBOX_POLLS, "company" => m.company.clone(), "outcome" => "ok").increment(1);
                None
            }
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("no answer within {} s", self.cfg.imap_timeout.as_secs())),
        };
        if let Some(e) = &error {
            metrics::counter!(MAILBOX_POLLS, "company" => m.company.clone(), "outcome" => "failed").increment(1);
            tracing::warn!(company = m.company, error = e, "mailbox poll failed");
        }
        self.svc.mailbox_polled(&m.company, error.as_deref(), every).await?;
        Ok(true)
    }

    async fn poll(&self, m: &MailboxAccess) -> Result<usize, String> {
        let (tls, host, port) = server_of(&m.imap_url, "imaps", (993, 143))?;
        let (tcp, internal) = self.connect(&host, port).await?;
        if !tls && !internal {
            return Err("imap:// would send the password in clear to a public server: use imaps://".into());
        }
        if tls {
            let connector = tokio_native_tls::native_tls::TlsConnector::new().map_err(|e| e.to_string())?;
            let stream = tokio_native_tls::TlsConnector::from(connector)
                .connect(&host, tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            self.poll_on(stream, m).await
        } else {
            self.poll_on(tcp, m).await
        }
    }

    /// A TCP connection to the first address of `host` the mail policy allows (tenants choose
    /// these hosts: an internal address only where the gateway allows private targets), and
    /// whether that address is internal.
    async fn connect(&self, host: &str, port: u16) -> Result<(tokio::net::TcpStream, bool), String> {
        let addrs: Vec<std::net::SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|e| format!("resolve {host}: {e}"))?.collect();
        let allowed: Vec<std::net::SocketAddr> =
            addrs.iter().copied().filter(|a| self.cfg.mail_policy.allows(a.ip())).collect();
        let Some(first) = allowed.first() else {
            return Err(format!(
                "{host} has no address this gateway may connect to (internal addresses are not allowed)"
            ));
        };
        let tcp = tokio::time::timeout(Duration::from_secs(15), tokio::net::TcpStream::connect(*first))
            .await
            .map_err(|_| format!("connect {host}:{port}: timed out"))?
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        Ok((tcp, crate::netguard::is_internal(first.ip())))
    }

    async fn poll_on<S>(&self, stream: S, m: &MailboxAccess) -> Result<usize, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
    {
        tracing::debug!(company = m.company, "IMAP connected");
        let mut client = async_imap::Client::new(stream);
        client.read_response().await.map_err(|e| format!("IMAP greeting: {e}"))?;
        let mut session = client.login(&m.username, &m.password).await.map_err(|(e, _)| format!("IMAP login: {e}"))?;
        // EXAMINE: the gateway reads the mailbox and never changes it (not even \\Seen).
        let mailbox = session.examine(&m.folder).await.map_err(|e| format!("IMAP examine {}: {e}", m.folder))?;
        let validity = mailbox.uid_validity.unwrap_or(0) as i64;
        tracing::debug!(company = m.company, exists = mailbox.exists, validity, "IMAP folder opened");
        // A new mailbox, or a new UIDVALIDITY (the folder renumbered), is read from the messages
        // of the last 8 days: older ones are past their RCV window (taken ones are skipped by their
        // Message-ID).
        let known = m.uid_validity == Some(validity);
        let from = if known { m.last_uid + 1 } else { 1 };
        let since = (Utc::now() - chrono::Duration::days(8)).format("%d-%b-%Y");
        let query = if known { format!("UID {from}:*") } else { format!("SINCE {since}") };
        let mut uids: Vec<u32> =
            session.uid_search(query).await.map_err(|e| format!("IMAP search: {e}"))?.into_iter().collect();
        uids.retain(|u| *u as i64 >= from);
        uids.sort_unstable();
        tracing::debug!(company = m.company, ?uids, "IMAP new messages");
        let mut taken = 0;
        let mut last = if from > 1 { from - 1 } else { 0 };
        for uid in uids {
            let size = {
                let mut fetches = session
                    .uid_fetch(uid.to_string(), "(UID RFC822.SIZE)")
                    .await
                    .map_err(|e| format!("IMAP fetch: {e}"))?;
                let mut size = None;
                while let Some(f) = fetches.next().await {
                    let f = f.map_err(|e| format!("IMAP fetch: {e}"))?;
                    if f.uid == Some(uid) {
                        size = f.size;
                    }
                }
                size
            };
            if size.is_some_and(|s| s as usize > MAX_MESSAGE) {
                let why = format!(
                    "a message of {} bytes: over the {} MiB limit, not read",
                    size.unwrap_or(0),
                    MAX_MESSAGE >> 20
                );
                self.svc
                    .record_failed_message(&m.company, format!("UID {uid}").into_bytes(), &why)
                    .await
                    .map_err(|e| e.to_string())?;
            } else {
                let raw = {
                    let mut fetches = session
                        .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                        .await
                        .map_err(|e| format!("IMAP fetch: {e}"))?;
                    let mut raw = None;
                    while let Some(f) = fetches.next().await {
                        let f = f.map_err(|e| format!("IMAP fetch: {e}"))?;
                        if f.uid == Some(uid) {
                            raw = f.body().map(<[u8]>::to_vec);
                        }
                    }
                    raw
                };
                // No body: stop here and read it again next time.
                let Some(raw) = raw else { break };
                match self.svc.take_message(&m.company, raw.clone()).await {
                    Ok(report) if report.taken => taken += 1,
                    Ok(_) => {}
                    // A message that cannot be taken is recorded with why, so the mailbox moves on
                    // (if even that fails, the database is down: the poll ends and is tried again).
                    Err(e) => {
                        tracing::warn!(company = m.company, uid, error = %e, "a message could not be taken in");
                        self.svc
                            .record_failed_message(&m.company, raw, &e.to_string())
                            .await
                            .map_err(|e| format!("message UID {uid}: {e}"))?;
                    }
                }
            }
            last = uid as i64;
            self.svc.mailbox_progress(&m.company, validity, last).await.map_err(|e| e.to_string())?;
        }
        if m.uid_validity != Some(validity) {
            self.svc.mailbox_progress(&m.company, validity, last).await.map_err(|e| e.to_string())?;
        }
        let _ = session.logout().await;
        Ok(taken)
    }

    /// After a mail failed on try `attempts + 1`: `failed` when the failure is permanent or the
    /// tries are spent, else `pending` until a backoff that doubles per try (an hour at most).
    fn after_failure(&self, attempts: i64, permanent: bool, now: DateTime<Utc>) -> (&'static str, DateTime<Utc>) {
        if permanent || attempts + 1 >= self.cfg.mail_tries {
            return ("failed", now);
        }
        let factor = 1i32 << attempts.clamp(0, 7);
        ("pending", now + (self.cfg.mail_backoff * factor).min(chrono::Duration::hours(1)))
    }

    /// Mails one due answer; true when there was one.
    pub async fn send_one(&self) -> Result<bool, ServiceError> {
        let Some((r, xml)) = self.svc.lease_response(self.cfg.lease).await? else { return Ok(false) };
        let now = Utc::now();
        let outcome = self.mail(&r.company, r.to_address.as_deref().unwrap_or(""), &r.kind, r.id, xml).await;
        let (state, error, id, next) = match outcome {
            Ok(id) => ("sent", None, Some(id), now),
            Err((e, permanent)) => {
                let (state, next) = self.after_failure(r.attempts, permanent, now);
                (state, Some(e), None, next)
            }
        };
        metrics::counter!(EXCHANGE_MAILS, "outcome" => mail_outcome(state)).increment(1);
        if let Some(e) = &error {
            tracing::warn!(company = r.company, answer = r.id, error = e, state, "answer not sent");
        }
        self.svc.response_outcome(r.id, state, error.as_deref(), id.as_deref(), next).await?;
        Ok(true)
    }

    /// `Err((why, permanent))`.
    async fn mail(&self, company: &str, to: &str, kind: &str, id: i64, xml: Vec<u8>) -> Result<String, (String, bool)> {
        let company_name = self.svc.company(company).await.map(|c| c.company.rzn_soc).unwrap_or_default();
        self.send_mail(
            company,
            to,
            &format!("{kind} de {company_name} ({company})"),
            &format!("Respuesta de intercambio {kind} (Formato Mensaje de Respuesta a DTE del SII), adjunta en XML."),
            vec![(format!("{kind}-{id}.xml"), "application/xml", xml)],
        )
        .await
    }

    /// Sends a message from the company's mailbox through its SMTP server: the Message-ID, or
    /// `(why, permanent)`.
    async fn send_mail(
        &self,
        company: &str,
        to: &str,
        subject: &str,
        body: &str,
        files: Vec<(String, &str, Vec<u8>)>,
    ) -> Result<String, (String, bool)> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        use lettre::AsyncTransport;
        let m = self.svc.mailbox_access(company).await.map_err(|e| (e.to_string(), false))?;
        let Some(m) = m else { return Err(("the company has no mailbox".into(), true)) };
        let Some(url) = &m.smtp_url else { return Err(("the company's mailbox has no SMTP server".into(), true)) };
        let (implicit, host, port) = server_of(url, "smtps", (465, 587)).map_err(|e| (e, true))?;
        let msg = crate::exchange::mail::with_files(&m.from_address, to, subject, body, files)
            .map_err(|e| (e.to_string(), true))?;
        let message_id = msg.headers().get_raw("Message-ID").unwrap_or_default().to_string();
        // Resolved and checked here, then reached by address (the certificate still names the host).
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| (format!("resolve {host}: {e}"), false))?
            .collect();
        let Some(addr) = addrs.iter().find(|a| self.cfg.mail_policy.allows(a.ip())) else {
            return Err((
                format!("{host} has no address this gateway may connect to (internal addresses are not allowed)"),
                true,
            ));
        };
        let params = TlsParameters::new(host.clone()).map_err(|e| (e.to_string(), true))?;
        // A public server must encrypt (the password and the documents cross the internet).
        let tls = if implicit {
            Tls::Wrapper(params)
        } else if crate::netguard::is_internal(addr.ip()) {
            Tls::Opportunistic(params)
        } else {
            Tls::Required(params)
        };
        let mut b = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(30)));
        if let (Some(u), Some(p)) = (&m.smtp_username, &m.smtp_password) {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        match b.build().send(msg).await {
            Ok(_) => Ok(message_id),
            Err(e) => Err((e.to_string(), e.is_permanent())),
        }
    }

    /// Reception dates and event histories of RCV documents due for a look; true when any was.
    pub async fn rcv_round(&self) -> Result<bool, ServiceError> {
        let now = Utc::now();
        let due = self.svc.rcv_due(20).await?;
        for r in &due {
            let Ok(em) = r.rut_emisor.parse::<Rut>() else { continue };
            let (tipo, folio) = (r.tipo as u16, r.folio);
            if r.sii_reception.is_none() {
                let op = "consultarFechaRecepcionSii";
                let got = self
                    .rcv_call(&r.company, op, move |c, t| {
                        Box::pin(async move {
                            let a = c.fecha_recepcion(&t, em, tipo, folio).await?;
                            Ok(RcvAnswer {
                                text: a.map(rcv::format_sii_datetime).unwrap_or_default(),
                                ..Default::default()
                            })
                        })
                    })
                    .await;
                match got.map(|a| rcv::parse_sii_datetime(&a.text)) {
                    Ok(Some(at)) => {
                        count(op, "ok");
                        self.svc.set_reception(r.id, at).await?;
                    }
                    // Not at the SII yet: the window has not started.
                    Ok(None) => {
                        count(op, "refused");
                        let next = now + self.cfg.rcv_recheck.min(chrono::Duration::minutes(10));
                        self.svc.rcv_next(r.id, Some(next)).await?;
                    }
                    Err(e) => {
                        tracing::warn!(company = r.company, folio, error = %e, "no reception date from the SII");
                        self.svc.rcv_next(r.id, Some(now + chrono::Duration::minutes(5))).await?;
                    }
                }
                continue;
            }
            let op = "listarEventosHistDoc";
            let got = self
                .rcv_call(&r.company, op, move |c, t| Box::pin(async move { c.eventos(&t, em, tipo, folio).await }))
                .await;
            // Read again until the deadline, and once just after it: then the document may be
            // accepted by law.
            let next = match r.deadline {
                Some(d) if r.state == "received" && d > now => {
                    Some((now + self.cfg.rcv_recheck).min(d + chrono::Duration::seconds(1)))
                }
                _ => None,
            };
            match got {
                Ok(a) => {
                    count(op, "ok");
                    self.svc.rcv_events(r, &a.events).await?;
                }
                Err(e) => tracing::warn!(company = r.company, folio, error = %e, "no RCV events from the SII"),
            }
            self.svc.rcv_next(r.id, next).await?;
        }
        Ok(!due.is_empty())
    }

    /// Warnings for deadlines within reach, acceptance by law after them.
    pub async fn deadlines(&self) -> Result<(), ServiceError> {
        let (near, expired) = self.svc.received_deadlines(self.cfg.deadline_warning).await?;
        if near + expired > 0 {
            tracing::info!(near, expired, "received documents' deadlines");
        }
        Ok(())
    }
}
