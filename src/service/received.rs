//! The receiving side's operations: a company's exchange mailbox, taking in a supplier's message
//! or file (once), the technical answer it gets, the inbox, and the answers a decision sends.
//! The RCV calls themselves are the exchange worker's (`worker::exchange`).

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{now_local, parse_rut, Result, Service, ServiceError};
use crate::domain::Rut;
use crate::exchange::intake::{self, DteCode, EnvelopeCode, ReceivedEnvelope};
use crate::exchange::mail;
use crate::exchange::rcv::{self, Accion};
use crate::exchange::respuesta::{self, DteRef, EstadoDte, RecepcionDte, RecepcionEnvio, Responder, ResultadoDte};
use crate::store::{
    EventRow, MailboxRow, NewAudit, NewEnvelope, NewMessage, NewReceived, NewResponse, ReceivedFilter, ReceivedRow,
    ResponseRow,
};
use crate::vault::{mailbox_aad, unwrap_text, wrap_text};

/// `PUT /v1/companies/{rut}/mailbox`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxBody {
    /// `imaps://host[:993]` (or `imap://host:port` for a server on this network).
    pub imap_url: String,
    pub username: String,
    pub password: String,
    #[serde(default = "inbox")]
    pub folder: String,
    /// Seconds between polls (15-3600; 60 by default).
    #[serde(default = "sixty")]
    pub poll_seconds: i64,
    /// `smtps://host[:465]`, `smtp://host:port` (STARTTLS when offered) for answers; none: answers
    /// are kept for download only.
    pub smtp_url: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    /// The From of the answers (the company's exchange address).
    pub from_address: String,
}

fn inbox() -> String {
    "INBOX".into()
}
fn sixty() -> i64 {
    60
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxInfo {
    pub imap_url: String,
    pub username: String,
    pub folder: String,
    pub poll_seconds: i64,
    pub smtp_url: Option<String>,
    pub smtp_username: Option<String>,
    pub from_address: String,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub failures: i64,
}

/// A mailbox with its passwords opened, for the worker.
#[derive(Debug, Clone)]
pub struct MailboxAccess {
    pub company: String,
    pub imap_url: String,
    pub username: String,
    pub password: String,
    pub folder: String,
    pub poll_seconds: i64,
    pub smtp_url: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub from_address: String,
    pub uid_validity: Option<i64>,
    pub last_uid: i64,
}

/// One DTE of an intake, as the answer reports it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntakeDte {
    pub rut_emisor: String,
    pub tipo: u16,
    pub folio: i64,
    pub estado: i32,
    pub glosa: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntakeEnvelope {
    pub filename: String,
    pub envio_id: String,
    pub cod_envio: i64,
    pub estado: i32,
    pub glosa: String,
    pub dtes: Vec<IntakeDte>,
}

/// What taking in a message or file came to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntakeReport {
    pub message_id: String,
    /// False when the same message was taken before: nothing was done.
    pub taken: bool,
    pub envelopes: Vec<IntakeEnvelope>,
    /// Who the technical receipt (RecepcionEnvio) goes to; absent when it is kept for download.
    pub answer_to: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceivedEvent {
    pub code: String,
    pub description: String,
    pub responsible: Option<String>,
    pub at: DateTime<Utc>,
    /// `rcv` (the SII's registry) or `gateway`.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResponseInfo {
    pub id: i64,
    /// `RecepcionEnvio`, `ResultadoDTE` or `EnvioRecibos`.
    pub kind: String,
    pub to_address: Option<String>,
    /// `pending`, `sent`, `failed` or `no_address` (kept for download).
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ResponseRow> for ResponseInfo {
    fn from(r: ResponseRow) -> Self {
        ResponseInfo {
            id: r.id,
            kind: r.kind,
            to_address: r.to_address,
            state: r.state,
            attempts: r.attempts,
            last_error: r.last_error,
            sent_at: r.sent_at,
            created_at: r.created_at,
        }
    }
}

/// A received document as the inbox shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceivedInfo {
    pub rut_emisor: String,
    pub rzn_soc: String,
    pub tipo: i32,
    pub folio: i64,
    pub fch_emis: chrono::NaiveDate,
    pub mnt_total: i64,
    /// `received`, `accepted`, `goods_received`, `claimed`, `rejected` or `accepted_by_law`.
    pub state: String,
    /// The verification, one line per check (`PASS …`, `WARN …`, `FAIL …`).
    pub verification: Vec<String>,
    pub estado_recepcion: i32,
    pub glosa_recepcion: String,
    /// Whether the RCV registers acceptance and claims for this type (33, 34, 43).
    pub rcv: bool,
    pub sii_reception: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    /// Calendar days left to decide (0 on the last day); absent when unknown or decided.
    pub days_left: Option<i64>,
    pub decision: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub events: Vec<ReceivedEvent>,
    pub created_at: DateTime<Utc>,
    pub xml_url: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceivedPage {
    pub items: Vec<ReceivedInfo>,
    pub next: Option<i64>,
}

/// `POST …/received/{rut_emisor}/{tipo}/{folio}/decision`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// ACD (accept), ERM (receipt of goods or services), RCD (claim the content), RFP / RFT
    /// (partial / total lack of goods).
    pub accion: Accion,
    /// Required for a claim: the reason, sent to the supplier in the ResultadoDTE.
    pub reason: Option<String>,
    /// Where the goods were received (ERM's `Recinto`, 80 characters).
    pub recinto: Option<String>,
}

/// Which received documents to list.
#[derive(Debug, Clone, Default)]
pub struct ReceivedQuery {
    pub state: Option<String>,
    pub emisor: Option<String>,
    pub deadline_before: Option<chrono::NaiveDate>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

pub use crate::exchange::rcv::RECEIVED_STATES;

/// XML files read from one message.
const MAX_FILES: usize = 20;

/// Types the answers' schema can name (`DTEType` of SiiTypes_v10.xsd): others get no RecepcionDTE
/// or ResultadoDTE line (their decision is the RCV's only).
fn answerable(tipo: u16) -> bool {
    matches!(tipo, 33 | 34 | 46 | 52 | 56 | 61)
}

/// Local (Chile) wall time as stored UTC.
pub fn local_to_utc(t: NaiveDateTime) -> DateTime<Utc> {
    Local.from_local_datetime(&t).earliest().map(|d| d.with_timezone(&Utc)).unwrap_or_else(|| t.and_utc())
}

pub fn utc_to_local(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&Local).naive_local()
}

/// A number of up to 10 digits, from a digest: `CodEnvio` and `IdRespuesta` are the receiver's to
/// choose, and the same file must get the same one on every instance.
fn code_of(parts: &[&str]) -> i64 {
    let h = crate::crypto::sha256_hex(parts.join("|").as_bytes());
    let n = u64::from_str_radix(&h[..15], 16).unwrap_or(1);
    (n % 9_000_000_000 + 1_000_000_000) as i64
}

/// A received DTE's identity as the store keys it: the issuer's RUT written as the gateway writes
/// RUTs, the type and the folio.
fn dte_key(d: &intake::ReceivedDte) -> (String, i32, i64) {
    let issuer = d.rut_emisor.parse::<Rut>().map(|r| r.to_string()).unwrap_or_else(|_| d.rut_emisor.clone());
    (issuer, d.tipo as i32, d.folio)
}

/// The RCV's events (the SII's local times) as the store keeps them.
pub(super) fn rcv_rows(events: &[rcv::Evento]) -> Vec<EventRow> {
    events
        .iter()
        .map(|e| EventRow {
            code: e.code.clone(),
            description: e.description.clone(),
            responsible: e.responsible.clone(),
            at: local_to_utc(e.at),
            source: "rcv".into(),
        })
        .collect()
}

/// The root element's name of an XML file, if it is one.
fn root_name(bytes: &[u8]) -> Option<String> {
    let (doc, _) = crate::xml::input::parse(bytes).ok()?;
    doc.get_root_element().map(|r| r.get_name())
}

fn checks_json(r: &crate::verify::Report) -> String {
    serde_json::to_string(&r.lines()).unwrap_or_else(|_| "[]".into())
}

fn received_event(company: &str, d: &NewReceived, at: DateTime<Utc>) -> String {
    serde_json::json!({
        "type": "received.new",
        "company": company,
        "rut_emisor": d.rut_emisor,
        "tipo": d.tipo,
        "folio": d.folio,
        "fch_emis": d.fch_emis,
        "mnt_total": d.mnt_total,
        "rcv": rcv::in_rcv(d.tipo as u16),
        "at": crate::store::ts(at),
    })
    .to_string()
}

pub fn decided_event(r: &ReceivedRow, accion: &str, at: DateTime<Utc>) -> String {
    serde_json::json!({
        "type": "received.decided",
        "company": r.company,
        "rut_emisor": r.rut_emisor,
        "tipo": r.tipo,
        "folio": r.folio,
        "decision": accion,
        "state": r.state,
        "at": crate::store::ts(at),
    })
    .to_string()
}

pub fn deadline_event(r: &ReceivedRow, now: DateTime<Utc>) -> String {
    let left = r.deadline.map(|d| rcv::days_left(utc_to_local(d), utc_to_local(now)));
    serde_json::json!({
        "type": "received.deadline_near",
        "company": r.company,
        "rut_emisor": r.rut_emisor,
        "tipo": r.tipo,
        "folio": r.folio,
        "deadline": r.deadline.map(crate::store::ts),
        "days_left": left,
        "at": crate::store::ts(now),
    })
    .to_string()
}

pub fn by_law_event(r: &ReceivedRow, now: DateTime<Utc>) -> String {
    decided_event(r, "LEY", now)
}

impl Service {
    pub async fn put_mailbox(&self, rut: &str, b: MailboxBody) -> Result<MailboxInfo> {
        self.company(rut).await?;
        let field = |f: &str, m: String| ServiceError::BadRequest(format!("{f}: {m}"));
        let scheme = |u: &str, allowed: &[&str], f: &str| -> Result<()> {
            let s = u.split_once("://").map(|x| x.0).unwrap_or("");
            if !allowed.contains(&s) || u.split_once("://").is_none_or(|x| x.1.trim_matches('/').is_empty()) {
                return Err(field(
                    f,
                    format!(
                        "use {}",
                        allowed.iter().map(|a| format!("{a}://host[:port]")).collect::<Vec<_>>().join(" or ")
                    ),
                ));
            }
            Ok(())
        };
        scheme(&b.imap_url, &["imaps", "imap"], "imap_url")?;
        if let Some(u) = &b.smtp_url {
            scheme(u, &["smtps", "smtp"], "smtp_url")?;
        }
        if !(15..=3600).contains(&b.poll_seconds) {
            return Err(field("poll_seconds", "between 15 and 3600".into()));
        }
        if b.from_address.parse::<lettre::Address>().is_err() {
            return Err(field("from_address", "not an e-mail address".into()));
        }
        if b.username.trim().is_empty() || b.password.is_empty() || b.folder.trim().is_empty() {
            return Err(field("username", "username, password and folder are required".into()));
        }
        let seal = |slot: &str, v: &str| -> Result<String> {
            Ok(wrap_text(&self.vault.seal(v.as_bytes(), mailbox_aad(rut, slot).as_bytes())?))
        };
        let row = MailboxRow {
            company: rut.to_string(),
            imap_url: b.imap_url.trim_end_matches('/').to_string(),
            username: b.username.clone(),
            password: seal("imap", &b.password)?,
            folder: b.folder.clone(),
            poll_seconds: b.poll_seconds,
            smtp_url: b.smtp_url.as_ref().map(|u| u.trim_end_matches('/').to_string()),
            smtp_username: b.smtp_username.clone(),
            smtp_password: b.smtp_password.as_deref().map(|p| seal("smtp", p)).transpose()?,
            from_address: b.from_address.clone(),
            uid_validity: None,
            last_uid: 0,
            last_poll_at: None,
            last_error: None,
            failures: 0,
        };
        let audit = NewAudit {
            scope: rut.to_string(),
            action: "mailbox.put",
            subject: rut.to_string(),
            data: format!("{} {} {}", row.imap_url, row.username, row.folder),
        };
        self.store.put_mailbox(row, audit, Utc::now()).await?;
        self.mailbox(rut).await
    }

    /// Received documents by state, and undecided ones whose deadline is within `within`.
    pub async fn received_counts(&self, within: chrono::Duration) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        Ok(self.store.received_counts(Utc::now(), within).await?)
    }

    /// The answer an earlier request with this `Idempotency-Key` got (`scope` is the resource);
    /// the same key with another body is refused.
    pub async fn idempotent_answer(&self, key_id: &str, scope: &str, key: &str, body: &[u8]) -> Result<Option<String>> {
        let hash = crate::crypto::sha256_hex(body);
        match self.store.idem_lookup(key_id, &format!("{scope}:{key}")).await? {
            Some((h, _)) if h != hash => Err(ServiceError::IdempotencyMismatch),
            Some((_, answer)) => Ok(answer),
            None => Ok(None),
        }
    }

    pub async fn remember_answer(&self, key_id: &str, scope: &str, key: &str, body: &[u8], answer: &str) -> Result<()> {
        let hash = crate::crypto::sha256_hex(body);
        Ok(self.store.idem_remember(key_id, &format!("{scope}:{key}"), &hash, answer, Utc::now()).await?)
    }

    pub async fn mailbox(&self, rut: &str) -> Result<MailboxInfo> {
        let m = self.store.get_mailbox(rut).await?.ok_or_else(|| ServiceError::NotFound("mailbox".into()))?;
        Ok(MailboxInfo {
            imap_url: m.imap_url,
            username: m.username,
            folder: m.folder,
            poll_seconds: m.poll_seconds,
            smtp_url: m.smtp_url,
            smtp_username: m.smtp_username,
            from_address: m.from_address,
            last_poll_at: m.last_poll_at,
            last_error: m.last_error,
            failures: m.failures,
        })
    }

    /// Asks for a poll as soon as a worker is free (a new supplier's mail is expected).
    pub async fn poll_mailbox_now(&self, rut: &str) -> Result<()> {
        self.company(rut).await?;
        if !self.store.poll_mailbox_now(rut, Utc::now()).await? {
            return Err(ServiceError::NotFound("mailbox".into()));
        }
        Ok(())
    }

    fn open_mailbox(&self, m: MailboxRow) -> Result<MailboxAccess> {
        let open = |slot: &str, v: &str| -> Result<String> {
            let sealed = unwrap_text(v).ok_or_else(|| ServiceError::Internal("mailbox password not sealed".into()))?;
            let plain = self.vault.open(&sealed, mailbox_aad(&m.company, slot).as_bytes())?;
            String::from_utf8(plain).map_err(|e| ServiceError::Internal(e.to_string()))
        };
        Ok(MailboxAccess {
            password: open("imap", &m.password)?,
            smtp_password: m.smtp_password.as_deref().map(|p| open("smtp", p)).transpose()?,
            company: m.company.clone(),
            imap_url: m.imap_url,
            username: m.username,
            folder: m.folder,
            poll_seconds: m.poll_seconds,
            smtp_url: m.smtp_url,
            smtp_username: m.smtp_username,
            from_address: m.from_address,
            uid_validity: m.uid_validity,
            last_uid: m.last_uid,
        })
    }

    /// One mailbox due for polling, leased to this instance, passwords opened.
    pub async fn lease_mailbox(&self, lease: chrono::Duration) -> Result<Option<MailboxAccess>> {
        match self.store.lease_mailbox(Utc::now(), lease).await? {
            Some(m) => Ok(Some(self.open_mailbox(m)?)),
            None => Ok(None),
        }
    }

    /// The company's mailbox with its passwords, for sending answers.
    pub async fn mailbox_access(&self, rut: &str) -> Result<Option<MailboxAccess>> {
        self.store.get_mailbox(rut).await?.map(|m| self.open_mailbox(m)).transpose()
    }

    pub async fn mailbox_progress(&self, rut: &str, uid_validity: i64, last_uid: i64) -> Result<()> {
        Ok(self.store.mailbox_progress(rut, uid_validity, last_uid).await?)
    }

    pub async fn mailbox_polled(&self, rut: &str, error: Option<&str>, next: chrono::Duration) -> Result<()> {
        let now = Utc::now();
        Ok(self.store.mailbox_polled(rut, error, now + next, now).await?)
    }

    pub async fn message_taken(&self, rut: &str, message_id: &str) -> Result<bool> {
        Ok(self.store.message_taken(rut, message_id).await?)
    }

    /// Takes in a raw mail message from the company's mailbox.
    pub async fn take_message(&self, rut: &str, raw: Vec<u8>) -> Result<IntakeReport> {
        let mut incoming = mail::read(&raw).unwrap_or_else(|| mail::Incoming {
            digest: crate::crypto::sha256_hex(&raw),
            message_id: format!("sha256:{}", crate::crypto::sha256_hex(&raw)),
            ..Default::default()
        });
        // A mail's own id cannot pass for an upload's; texts lose what no database stores (NUL).
        let clean = |s: &str| s.replace('\0', "").chars().take(500).collect::<String>();
        incoming.message_id = format!("mail:{}", clean(&incoming.message_id));
        incoming.from = incoming.from.as_deref().map(clean);
        incoming.reply_to = incoming.reply_to.as_deref().map(clean);
        incoming.subject = incoming.subject.as_deref().map(clean);
        for (name, _) in incoming.xml.iter_mut() {
            *name = clean(name);
        }
        // At most MAX_FILES XML files of a message are read; the rest is noted.
        let extra = incoming.xml.len().saturating_sub(MAX_FILES);
        incoming.xml.truncate(MAX_FILES);
        let mut r = self.take_in(rut, "mailbox", incoming, raw).await?;
        if extra > 0 {
            r.note = Some(format!("{extra} more XML attachments were not read (at most {MAX_FILES} a message)"));
        }
        Ok(r)
    }

    /// A message that could not be taken in (a repeatable failure): recorded with why, so the
    /// mailbox moves past it and an operator can see it.
    pub async fn record_failed_message(&self, rut: &str, raw: Vec<u8>, why: &str) -> Result<()> {
        let incoming = mail::read(&raw).unwrap_or_default();
        let digest = crate::crypto::sha256_hex(&raw);
        let id = if incoming.message_id.is_empty() {
            format!("sha256:{digest}")
        } else {
            incoming.message_id.replace('\0', "")
        };
        let msg = NewMessage {
            company: rut.to_string(),
            message_id: format!("mail:{id}"),
            digest,
            source: "mailbox".into(),
            sender: None,
            subject: None,
            raw,
            outcome: "error".into(),
            note: Some(why.chars().take(500).collect()),
        };
        self.store.record_intake(msg, vec![], None, |_, _| String::new(), Utc::now()).await?;
        Ok(())
    }

    /// Takes in a file uploaded by an ERP that fetches its mail itself.
    pub async fn take_file(&self, rut: &str, filename: &str, bytes: Vec<u8>) -> Result<IntakeReport> {
        let digest = crate::crypto::sha256_hex(&bytes);
        let incoming = mail::Incoming {
            message_id: format!("upload:{digest}"),
            digest,
            xml: vec![(filename.to_string(), bytes.clone())],
            ..Default::default()
        };
        self.take_in(rut, "upload", incoming, bytes).await
    }

    async fn take_in(&self, rut: &str, source: &str, incoming: mail::Incoming, raw: Vec<u8>) -> Result<IntakeReport> {
        let company = self.company(rut).await?;
        let me: Rut = parse_rut(rut)?;
        if self.store.message_taken(rut, &incoming.message_id).await? {
            return Ok(IntakeReport {
                message_id: incoming.message_id,
                taken: false,
                envelopes: vec![],
                answer_to: None,
                note: Some("taken before".into()),
            });
        }
        let trust = self.trust.clone();
        let files = incoming.xml.clone();
        // Buyers' answers about this company's own documents come to the same mailbox.
        type Read = (Vec<(String, Vec<u8>, ReceivedEnvelope)>, Vec<Vec<u8>>);
        let (read, answers): Read = tokio::task::spawn_blocking(move || {
            let mut read = Vec::new();
            let mut answers = Vec::new();
            for (name, bytes) in files {
                match root_name(&bytes).as_deref() {
                    Some("RespuestaDTE") | Some("EnvioRecibos") => answers.push(bytes),
                    _ => {
                        let e = intake::read(&bytes, me, &trust);
                        read.push((name, bytes, e));
                    }
                }
            }
            (read, answers)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        if !answers.is_empty() && read.is_empty() {
            return self.take_answers(rut, source, incoming, raw, answers).await;
        }
        let cert = match self.certificate(rut).await {
            Ok(c) => Some(c),
            Err(ServiceError::NoCertificate) => None,
            Err(e) => return Err(e),
        };
        // Answers applied first: if anything fails, the message is not taken and comes again.
        let mut answer_notes = Vec::new();
        for a in answers {
            let r = self.take_buyer_answer(rut, a).await?;
            answer_notes.push(r.note.unwrap_or_else(|| format!("{} answers applied", r.applied)));
        }
        // Where answers go: the supplier's exchange address the gateway knows (the company's own
        // list, the SII's list of authorised taxpayers), else the mail's Reply-To or From (the
        // exchange mailbox it came from), else the DTE's CorreoEmisor (often a sales contact).
        let emisor = read.iter().find_map(|(_, _, e)| e.rut_emisor.as_deref().and_then(|r| r.parse::<Rut>().ok()));
        let known = match emisor {
            Some(e) => self.store.buyer_address(rut, &e.to_string()).await?.map(|(a, _)| a),
            None => None,
        };
        let to = known
            .or(incoming.reply_to.clone())
            .or(incoming.from.clone())
            .or_else(|| read.iter().flat_map(|(_, _, e)| &e.dtes).find_map(|d| d.correo_emisor.clone()));
        for attempt in 0..2 {
            let mut read = read.clone();
            self.mark_repeated(rut, &mut read).await?;
            let now_l = now_local();
            let now = Utc::now();
            let envelopes: Vec<NewEnvelope> = read
                .iter()
                .map(|(name, bytes, e)| NewEnvelope {
                    filename: name.clone(),
                    envio_id: e.envio_id.clone(),
                    cod_envio: code_of(&[rut, &incoming.message_id, name, &e.digest]),
                    digest: e.digest.clone(),
                    rut_emisor: e.rut_emisor.clone(),
                    rut_receptor: e.rut_receptor.clone(),
                    contact: to.clone(),
                    estado: e.code.code(),
                    glosa: e.glosa.clone(),
                    checks: checks_json(&e.report),
                    xml: bytes.clone(),
                    docs: if e.code == EnvelopeCode::Ok {
                        e.dtes
                            .iter()
                            .filter(|d| d.code == DteCode::Ok)
                            .map(|d| NewReceived {
                                rut_emisor: dte_key(d).0,
                                tipo: d.tipo as i32,
                                folio: d.folio,
                                fch_emis: d.fch_emis,
                                rut_recep: d.rut_recep.clone(),
                                mnt_total: d.mnt_total,
                                rzn_soc: d.rzn_soc.clone(),
                                xml: d.xml.clone(),
                                estado: d.code.code(),
                                glosa: d.glosa.clone(),
                                // What the envelope's checks said is part of each DTE's story.
                                checks: checks_json(&crate::verify::Report {
                                    kind: d.report.kind.clone(),
                                    checks: e.report.checks.iter().chain(&d.report.checks).cloned().collect(),
                                }),
                                next_rcv_at: rcv::in_rcv(d.tipo).then_some(now),
                            })
                            .collect()
                    } else {
                        vec![]
                    },
                })
                .collect();
            let (answer, note) = match (&cert, envelopes.is_empty()) {
                (_, true) => (None, Some("no XML attachment: recorded and skipped".to_string())),
                (None, false) => (None, Some("the company has no certificate: no answer was signed".to_string())),
                (Some(cert), false) => {
                    match self.recepcion(rut, &company.company, cert, &envelopes, &read, now_l).await {
                        Ok(Some(xml)) => {
                            (Some(NewResponse { kind: "RecepcionEnvio".into(), xml, to_address: to.clone() }), None)
                        }
                        Ok(None) => (None, Some("the sender is unknown: no answer".to_string())),
                        Err(e) => (None, Some(format!("the answer could not be built: {e}"))),
                    }
                }
            };
            let note = match (note, answer_notes.is_empty()) {
                (n, true) => n,
                (None, false) => Some(answer_notes.join("; ")),
                (Some(n), false) => Some(format!("{n}; {}", answer_notes.join("; "))),
            };
            let outcome = if envelopes.is_empty() {
                "no-dte"
            } else if read.iter().all(|(_, _, e)| e.code == EnvelopeCode::Unreadable) {
                "unreadable"
            } else {
                "dte"
            };
            let report = IntakeReport {
                message_id: incoming.message_id.clone(),
                taken: true,
                envelopes: envelopes
                    .iter()
                    .zip(&read)
                    .map(|(n, (_, _, e))| IntakeEnvelope {
                        filename: n.filename.clone(),
                        envio_id: n.envio_id.clone(),
                        cod_envio: n.cod_envio,
                        estado: n.estado,
                        glosa: n.glosa.clone(),
                        dtes: e
                            .dtes
                            .iter()
                            .map(|d| IntakeDte {
                                rut_emisor: d.rut_emisor.clone(),
                                tipo: d.tipo,
                                folio: d.folio,
                                estado: d.code.code(),
                                glosa: d.glosa.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                answer_to: answer.as_ref().and_then(|a| a.to_address.clone()),
                note: note.clone(),
            };
            let msg = NewMessage {
                company: rut.to_string(),
                message_id: incoming.message_id.clone(),
                digest: incoming.digest.clone(),
                source: source.to_string(),
                sender: incoming.from.clone(),
                subject: incoming.subject.clone(),
                raw: raw.clone(),
                outcome: outcome.into(),
                note,
            };
            let r = self.store.record_intake(msg, envelopes, answer, |d, _| received_event(rut, d, now), now).await;
            match r {
                Ok(Some(_)) => {
                    let n: usize =
                        report.envelopes.iter().map(|e| e.dtes.iter().filter(|d| d.estado == 0).count()).sum();
                    metrics::counter!(crate::telemetry::RECEIVED_TAKEN, "source" => source.to_string())
                        .increment(n as u64);
                    return Ok(report);
                }
                Ok(None) => {
                    return Ok(IntakeReport {
                        taken: false,
                        envelopes: vec![],
                        note: Some("taken before".into()),
                        ..report
                    })
                }
                // Another instance took one of these DTEs between the check and the write.
                Err(crate::store::StoreError::Conflict(_)) if attempt == 0 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict("the message's DTEs were being received by another instance".into()))
    }

    /// A message that carries only buyers' answers: applied to the company's documents, recorded.
    async fn take_answers(
        &self,
        rut: &str,
        source: &str,
        incoming: mail::Incoming,
        raw: Vec<u8>,
        answers: Vec<Vec<u8>>,
    ) -> Result<IntakeReport> {
        let msg = NewMessage {
            company: rut.to_string(),
            message_id: incoming.message_id.clone(),
            digest: incoming.digest.clone(),
            source: source.to_string(),
            sender: incoming.from.clone(),
            subject: incoming.subject.clone(),
            raw,
            outcome: "answer".into(),
            note: None,
        };
        // Applied first (applying twice changes nothing), then the message is taken.
        let mut notes = Vec::new();
        for a in answers {
            let r = self.take_buyer_answer(rut, a).await?;
            notes.push(r.note.unwrap_or_else(|| format!("{} answers applied", r.applied)));
        }
        let msg = NewMessage { note: Some(notes.join("; ")), ..msg };
        let taken = self.store.record_intake(msg, vec![], None, |_, _| String::new(), Utc::now()).await?.is_some();
        Ok(IntakeReport {
            message_id: incoming.message_id,
            taken,
            envelopes: vec![],
            answer_to: None,
            note: Some(if taken { notes.join("; ") } else { "taken before".into() }),
        })
    }

    /// Repeated envelopes (code 90) and DTEs received before or twice in this message (code 4).
    async fn mark_repeated(&self, rut: &str, read: &mut [(String, Vec<u8>, ReceivedEnvelope)]) -> Result<()> {
        let digests: Vec<String> =
            read.iter().filter(|(_, _, e)| e.code == EnvelopeCode::Ok).map(|(_, _, e)| e.digest.clone()).collect();
        let keys: Vec<(String, i32, i64)> =
            read.iter().flat_map(|(_, _, e)| &e.dtes).filter(|d| d.code == DteCode::Ok).map(dte_key).collect();
        let (seen_env, seen) = self.store.received_before(rut, &digests, &keys).await?;
        let mut here = std::collections::HashSet::new();
        for (_, _, e) in read.iter_mut() {
            if e.code == EnvelopeCode::Ok && !e.digest.is_empty() && seen_env.contains(&e.digest) {
                e.code = EnvelopeCode::Repeated;
                e.glosa = EnvelopeCode::Repeated.glosa().to_string();
            }
            let envelope_ok = e.code == EnvelopeCode::Ok;
            for d in e.dtes.iter_mut().filter(|d| d.code == DteCode::Ok) {
                let k = dte_key(d);
                if envelope_ok && (seen.contains(&k) || !here.insert(k)) {
                    d.code = DteCode::Repeated;
                    d.glosa = DteCode::Repeated.glosa().to_string();
                }
            }
        }
        Ok(())
    }

    /// The signed RecepcionEnvio for the envelopes of one message; `None` when there is nobody to
    /// answer (no envelope names its issuer).
    async fn recepcion(
        &self,
        rut: &str,
        company: &crate::domain::Company,
        cert: &std::sync::Arc<crate::cert::Certificate>,
        envelopes: &[NewEnvelope],
        read: &[(String, Vec<u8>, ReceivedEnvelope)],
        now: NaiveDateTime,
    ) -> Result<Option<Vec<u8>>> {
        let Some(recibe) =
            read.iter().find_map(|(_, _, e)| e.rut_emisor.as_deref().and_then(|r| r.parse::<Rut>().ok()))
        else {
            return Ok(None);
        };
        let responder = Responder {
            rut_responde: parse_rut(rut)?,
            rut_recibe: recibe,
            contacto: Some(company.rzn_soc.clone()),
            mail: company.correo_emisor.clone(),
            now,
        };
        let envios: Vec<RecepcionEnvio> = envelopes
            .iter()
            .zip(read)
            .map(|(n, (_, _, e))| RecepcionEnvio {
                nmb_envio: n.filename.clone(),
                fch_recep: now,
                cod_envio: n.cod_envio,
                envio_dte_id: n.envio_id.clone(),
                digest: Some(n.digest.clone()).filter(|d| !d.is_empty()),
                rut_emisor: e.rut_emisor.as_deref().and_then(|r| r.parse().ok()),
                rut_receptor: e.rut_receptor.as_deref().and_then(|r| r.parse().ok()),
                estado: n.estado,
                glosa: n.glosa.clone(),
                dtes: e
                    .dtes
                    .iter()
                    .filter(|d| answerable(d.tipo))
                    .filter_map(|d| {
                        Some(RecepcionDte {
                            dte: DteRef {
                                tipo: d.tipo,
                                folio: d.folio.max(1),
                                fch_emis: d.fch_emis,
                                rut_emisor: d.rut_emisor.parse().ok()?,
                                rut_recep: d.rut_recep.parse().ok()?,
                                mnt_total: d.mnt_total,
                            },
                            estado: d.code.code(),
                            glosa: d.glosa.clone(),
                        })
                    })
                    .collect(),
            })
            .collect();
        let id = code_of(&[
            rut,
            "recepcion",
            &envelopes.iter().map(|e| e.cod_envio.to_string()).collect::<Vec<_>>().join(","),
        ]);
        let cert = cert.clone();
        let xml = tokio::task::spawn_blocking(move || respuesta::recepcion_envio(&responder, &cert, id, &envios))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        Ok(Some(xml))
    }

    fn received_info(&self, rut: &str, r: ReceivedRow, events: Vec<EventRow>) -> ReceivedInfo {
        let now = now_local();
        let undecided = r.state == "received";
        ReceivedInfo {
            days_left: r.deadline.filter(|_| undecided).map(|d| rcv::days_left(utc_to_local(d), now)),
            verification: serde_json::from_str(&r.checks).unwrap_or_default(),
            rcv: rcv::in_rcv(r.tipo as u16),
            xml_url: format!("/v1/companies/{rut}/received/{}/{}/{}/xml", r.rut_emisor, r.tipo, r.folio),
            events: events
                .into_iter()
                .map(|e| ReceivedEvent {
                    code: e.code,
                    description: e.description,
                    responsible: e.responsible,
                    at: e.at,
                    source: e.source,
                })
                .collect(),
            rut_emisor: r.rut_emisor,
            rzn_soc: r.rzn_soc,
            tipo: r.tipo,
            folio: r.folio,
            fch_emis: r.fch_emis,
            mnt_total: r.mnt_total,
            state: r.state,
            estado_recepcion: r.estado,
            glosa_recepcion: r.glosa,
            sii_reception: r.sii_reception,
            deadline: r.deadline,
            decision: r.decision,
            decided_at: r.decided_at,
            reason: r.reason,
            created_at: r.created_at,
        }
    }

    pub async fn list_received(&self, rut: &str, q: ReceivedQuery) -> Result<ReceivedPage> {
        self.company(rut).await?;
        if let Some(s) = &q.state {
            if !RECEIVED_STATES.contains(&s.as_str()) {
                return Err(ServiceError::BadRequest(format!("state: one of {}", RECEIVED_STATES.join(", "))));
            }
        }
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let f = ReceivedFilter {
            state: q.state,
            emisor: q.emisor.map(|e| parse_rut(&e).map(|r| r.to_string())).transpose()?,
            deadline_before: q.deadline_before.and_then(|d| d.and_hms_opt(23, 59, 59)).map(local_to_utc),
            before: q.before,
            limit,
        };
        let rows = self.store.list_received(rut, &f).await?;
        let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id)).flatten();
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            let ev = self.store.received_events(r.id).await?;
            items.push(self.received_info(rut, r, ev));
        }
        Ok(ReceivedPage { items, next })
    }

    pub(crate) async fn received_row(&self, rut: &str, emisor: &str, tipo: i32, folio: i64) -> Result<ReceivedRow> {
        self.company(rut).await?;
        let emisor = parse_rut(emisor)?.to_string();
        self.store
            .get_received(rut, &emisor, tipo, folio)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("received document {tipo} {folio} of {emisor}")))
    }

    pub async fn get_received(&self, rut: &str, emisor: &str, tipo: i32, folio: i64) -> Result<ReceivedInfo> {
        let r = self.received_row(rut, emisor, tipo, folio).await?;
        let ev = self.store.received_events(r.id).await?;
        Ok(self.received_info(rut, r, ev))
    }

    pub async fn received_xml(&self, rut: &str, emisor: &str, tipo: i32, folio: i64) -> Result<Vec<u8>> {
        let r = self.received_row(rut, emisor, tipo, folio).await?;
        self.store.received_xml(r.id).await?.ok_or_else(|| ServiceError::NotFound("xml".into()))
    }

    /// The printed copy of a received document (letter or 80 mm), from the supplier's signed XML.
    pub async fn received_pdf(
        &self,
        rut: &str,
        emisor: &str,
        tipo: i32,
        folio: i64,
        format: crate::print::Format,
    ) -> Result<Vec<u8>> {
        let xml = self.received_xml(rut, emisor, tipo, folio).await?;
        let opts = crate::print::Options { format: Some(format), ..Default::default() };
        tokio::task::spawn_blocking(move || {
            let doc = crate::print::PrintDoc::from_xml(&xml, None)?;
            crate::print::render(&doc, &opts)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(ServiceError::from)
    }

    pub async fn received_responses(
        &self,
        rut: &str,
        emisor: &str,
        tipo: i32,
        folio: i64,
    ) -> Result<Vec<ResponseInfo>> {
        let r = self.received_row(rut, emisor, tipo, folio).await?;
        Ok(self.store.list_responses(rut, Some(r.id)).await?.into_iter().map(ResponseInfo::from).collect())
    }

    pub async fn response_xml(&self, rut: &str, id: i64) -> Result<(String, Vec<u8>)> {
        self.company(rut).await?;
        self.store.response_xml(rut, id).await?.ok_or_else(|| ServiceError::NotFound(format!("answer {id}")))
    }

    /// One answer due for mailing, leased to this instance, with its XML.
    pub async fn lease_response(&self, lease: chrono::Duration) -> Result<Option<(ResponseRow, Vec<u8>)>> {
        Ok(self.store.lease_response(Utc::now(), lease).await?)
    }

    /// After an SMTP attempt: `sent` (with the message id), `pending` again at `next`, or `failed`.
    pub async fn response_outcome(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
        message_id: Option<&str>,
        next: DateTime<Utc>,
    ) -> Result<()> {
        Ok(self.store.response_outcome(id, state, error, message_id, next, Utc::now()).await?)
    }

    /// RCV documents due for a look at the SII (reception date unknown, or undecided).
    pub async fn rcv_due(&self, limit: i64) -> Result<Vec<ReceivedRow>> {
        // Held for five minutes: one instance asks the SII for each; the answer sets the next look.
        Ok(self.store.reception_due(Utc::now(), limit, chrono::Duration::minutes(5)).await?)
    }

    /// The SII's reception date, read in its local time: the 8-day deadline follows from it.
    pub async fn set_reception(&self, id: i64, reception: NaiveDateTime) -> Result<()> {
        let window = Some((local_to_utc(reception), local_to_utc(rcv::deadline(reception))));
        Ok(self.store.set_reception(id, window, Some(Utc::now())).await?)
    }

    /// When to look at a received document in the RCV again (`None`: never).
    pub async fn rcv_next(&self, id: i64, next: Option<DateTime<Utc>>) -> Result<()> {
        Ok(self.store.set_reception(id, None, next).await?)
    }

    /// Events of the RCV's history (the SII's local times); a decision taken on the SII's site
    /// becomes this document's.
    pub async fn rcv_events(&self, r: &ReceivedRow, events: &[rcv::Evento]) -> Result<()> {
        self.store.add_received_events(r.id, &rcv_rows(events)).await?;
        if let Some(last) = events.iter().filter_map(|e| Accion::parse(&e.code)).next_back() {
            if r.state == "received" {
                let mut after = r.clone();
                after.state = last.state().into();
                let hook = decided_event(&after, last.code(), Utc::now());
                self.store.set_received_state(r, last.state(), last.code(), hook).await?;
            }
        }
        Ok(())
    }

    /// Warnings for deadlines within `warning`, then acceptance by law after them: `(near, expired)`.
    pub async fn received_deadlines(&self, warning: chrono::Duration) -> Result<(usize, usize)> {
        let now = Utc::now();
        let near = self.store.deadlines_near(now, warning, |r| deadline_event(r, now)).await?;
        let expired = self.store.expire_deadlines(now, |r| by_law_event(r, now)).await?;
        Ok((near, expired))
    }

    /// Checks a decision before it goes to the RCV: the document is undecided-able and the body
    /// complete.
    pub async fn check_decision(&self, r: &ReceivedRow, b: &DecisionBody) -> Result<()> {
        if b.accion.is_claim() && b.reason.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(ServiceError::BadRequest("reason: a claim needs its reason".into()));
        }
        // The answers travel in ISO-8859-1 with the schema's lengths.
        for (field, v, max) in [("reason", &b.reason, 200usize), ("recinto", &b.recinto, 80)] {
            if let Some(v) = v {
                if v.chars().count() > max || v.chars().any(|c| c as u32 > 0xFF || c.is_control()) {
                    return Err(ServiceError::BadRequest(format!(
                        "{field}: at most {max} characters of ISO-8859-1, without control characters"
                    )));
                }
            }
        }
        // Types outside the RCV follow its rules here (a claim after an acceptance is refused…).
        if !rcv::in_rcv(r.tipo as u16) {
            let done: Vec<String> = self.store.received_events(r.id).await?.into_iter().map(|e| e.code).collect();
            let code = rcv::transition(&done, b.accion);
            if !matches!(code, 0 | 7) {
                return Err(ServiceError::Rcv { code, detail: rcv::cod_resp_description(code).into() });
            }
        }
        if r.state == "accepted_by_law" {
            return Err(ServiceError::Conflict(format!(
                "the 8-day window closed on {}: the document was accepted by law",
                r.deadline.map(|d| utc_to_local(d).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Records a decision the RCV took (or, for types outside the RCV, the gateway's own): the
    /// answers for the supplier are built, signed and queued, the event and webhook written.
    /// The answers a decision sends to the supplier, built and signed before the decision goes to
    /// the SII: nothing the SII registers can then fail to be recorded here.
    pub async fn prepare_answers(&self, r: &ReceivedRow, b: &DecisionBody) -> Result<Vec<NewResponse>> {
        let now_l = now_local();
        let mut answers = Vec::new();
        if answerable(r.tipo as u16) {
            let cert = self.certificate(&r.company).await?;
            let company = self.company(&r.company).await?;
            let dte = DteRef {
                tipo: r.tipo as u16,
                folio: r.folio,
                fch_emis: r.fch_emis,
                rut_emisor: parse_rut(&r.rut_emisor)?,
                rut_recep: parse_rut(&r.rut_recep)?,
                mnt_total: r.mnt_total,
            };
            let responder = Responder {
                rut_responde: parse_rut(&r.company)?,
                rut_recibe: dte.rut_emisor,
                contacto: Some(company.company.rzn_soc.clone()),
                mail: company.company.correo_emisor.clone(),
                now: now_l,
            };
            let accion = b.accion;
            let reason = b.reason.clone().unwrap_or_default();
            let recinto = b.recinto.clone().unwrap_or_else(|| "Oficina central".into());
            let cod_envio = r.cod_envio;
            let id = code_of(&[&r.company, accion.code(), &r.id.to_string()]);
            let built = tokio::task::spawn_blocking(
                move || -> std::result::Result<Vec<(String, Vec<u8>)>, crate::error::DteError> {
                    let mut out = Vec::new();
                    if accion != Accion::Erm {
                        // A claim is a rejection under Ley 19.983, and the SII's format asks the glosa to
                        // say so; a partial lack of goods accepts the rest.
                        let (estado, glosa) = match accion {
                            Accion::Acd => (EstadoDte::Aceptado, "ACEPTADO OK".to_string()),
                            Accion::Rfp => (
                                EstadoDte::AceptadoConDiscrepancia,
                                format!("ACEPTADO CON DISCREPANCIAS, Ley 19.983 ({}): {reason}", accion.description()),
                            ),
                            _ => (
                                EstadoDte::Rechazado,
                                format!("RECHAZADO conforme a la Ley 19.983 ({}): {reason}", accion.description()),
                            ),
                        };
                        let item = ResultadoDte { dte: dte.clone(), cod_envio, estado, glosa };
                        out.push(("ResultadoDTE".into(), respuesta::resultado_dte(&responder, &cert, id, &[item])?));
                    }
                    if accion == Accion::Erm {
                        out.push((
                            "EnvioRecibos".into(),
                            respuesta::envio_recibos(&responder, &cert, &[(dte, recinto)])?,
                        ));
                    }
                    Ok(out)
                },
            )
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
            for (kind, xml) in built {
                answers.push(NewResponse { kind, xml, to_address: r.sender.clone() });
            }
        }
        Ok(answers)
    }

    /// Records a decision the RCV took (or, for types outside the RCV, the gateway's own) with its
    /// answers, event, webhook and audit entry; false when the same decision was recorded already.
    pub async fn record_decision(
        &self,
        r: &ReceivedRow,
        b: &DecisionBody,
        responsible: Option<String>,
        answers: Vec<NewResponse>,
        by: &str,
    ) -> Result<bool> {
        let now = Utc::now();
        let state = b.accion.state();
        let event = EventRow {
            code: b.accion.code().into(),
            description: b.accion.description().into(),
            responsible,
            at: now,
            source: if rcv::in_rcv(r.tipo as u16) { "rcv".into() } else { "gateway".into() },
        };
        let mut after = r.clone();
        after.state = state.into();
        let hook = decided_event(&after, b.accion.code(), now);
        let audit = NewAudit {
            scope: r.company.clone(),
            action: "received.decide",
            subject: format!("{}/{}/{}", r.rut_emisor, r.tipo, r.folio),
            data: format!("{} by {by}", b.accion.code()),
        };
        let changed = self
            .store
            .record_decision(r, b.accion.code(), state, b.reason.as_deref(), event, answers, hook, audit, now)
            .await?;
        if changed {
            metrics::counter!(crate::telemetry::RECEIVED_DECISIONS, "decision" => b.accion.code()).increment(1);
        }
        Ok(changed)
    }
}
