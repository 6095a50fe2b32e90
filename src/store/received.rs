//! The receiving side's tables, written once for both backends: exchange mailboxes (leased, so one
//! instance polls a mailbox at a time), every message taken once, supplier envelopes and DTEs,
//! the answers waiting for SMTP (leased like uploads), RCV events, deadlines.

use chrono::{DateTime, NaiveDate, Utc};

use super::ops::append_audit;
use super::sii_ops::{enqueue_events, skip_locked};
use super::sql::{args, Tx, Vals};
use super::*;

#[derive(Debug, Clone)]
pub struct MailboxRow {
    pub company: String,
    pub imap_url: String,
    pub username: String,
    /// Sealed by the vault.
    pub password: String,
    pub folder: String,
    pub poll_seconds: i64,
    pub smtp_url: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub from_address: String,
    pub uid_validity: Option<i64>,
    pub last_uid: i64,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub failures: i64,
}

const MAILBOX_COLS: &str = "company, imap_url, username, password, folder, poll_seconds, smtp_url, smtp_username, smtp_password, from_address, uid_validity, last_uid, last_poll_at, last_error, failures";

fn mailbox(r: &Vals) -> Result<MailboxRow, StoreError> {
    Ok(MailboxRow {
        company: r.text(0)?,
        imap_url: r.text(1)?,
        username: r.text(2)?,
        password: r.text(3)?,
        folder: r.text(4)?,
        poll_seconds: r.i64(5)?,
        smtp_url: r.opt(6, Vals::text)?,
        smtp_username: r.opt(7, Vals::text)?,
        smtp_password: r.opt(8, Vals::text)?,
        from_address: r.text(9)?,
        uid_validity: r.opt(10, Vals::i64)?,
        last_uid: r.i64(11)?,
        last_poll_at: r.opt(12, Vals::ts)?,
        last_error: r.opt(13, Vals::text)?,
        failures: r.i64(14)?,
    })
}

/// A message (or an uploaded file) as it was taken in.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub company: String,
    pub message_id: String,
    pub digest: String,
    pub source: String,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub raw: Vec<u8>,
    /// `dte`, `no-dte` or `unreadable`.
    pub outcome: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewEnvelope {
    pub filename: String,
    pub envio_id: String,
    pub cod_envio: i64,
    pub digest: String,
    pub rut_emisor: Option<String>,
    pub rut_receptor: Option<String>,
    pub contact: Option<String>,
    pub estado: i32,
    pub glosa: String,
    pub checks: String,
    pub xml: Vec<u8>,
    /// The DTEs received OK (code 0); the others are only in the answer.
    pub docs: Vec<NewReceived>,
}

#[derive(Debug, Clone)]
pub struct NewReceived {
    pub rut_emisor: String,
    pub tipo: i32,
    pub folio: i64,
    pub fch_emis: NaiveDate,
    pub rut_recep: String,
    pub mnt_total: i64,
    pub rzn_soc: String,
    pub xml: Vec<u8>,
    pub estado: i32,
    pub glosa: String,
    pub checks: String,
    /// When to ask the SII for its reception date (RCV types only).
    pub next_rcv_at: Option<DateTime<Utc>>,
}

/// An answer to send (or kept for download when there is no address).
#[derive(Debug, Clone)]
pub struct NewResponse {
    pub kind: String,
    pub xml: Vec<u8>,
    pub to_address: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReceivedRow {
    pub id: i64,
    pub company: String,
    pub envelope_id: i64,
    pub rut_emisor: String,
    pub tipo: i32,
    pub folio: i64,
    pub fch_emis: NaiveDate,
    pub rut_recep: String,
    pub mnt_total: i64,
    pub rzn_soc: String,
    pub estado: i32,
    pub glosa: String,
    pub checks: String,
    pub state: String,
    pub sii_reception: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub decision: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub cod_envio: i64,
    pub sender: Option<String>,
}

const RECEIVED_COLS: &str = "d.id, d.company, d.envelope_id, d.rut_emisor, d.tipo, d.folio, d.fch_emis, d.rut_recep, d.mnt_total, d.rzn_soc, d.estado, d.glosa, d.checks, d.state, d.sii_reception, d.deadline, d.decision, d.decided_at, d.reason, d.created_at, e.cod_envio, COALESCE(m.sender, e.contact)";
const RECEIVED_FROM: &str = "received_documents d JOIN received_envelopes e ON e.id = d.envelope_id JOIN received_messages m ON m.id = e.message_id";

fn received(r: &Vals) -> Result<ReceivedRow, StoreError> {
    Ok(ReceivedRow {
        id: r.i64(0)?,
        company: r.text(1)?,
        envelope_id: r.i64(2)?,
        rut_emisor: r.text(3)?,
        tipo: r.i32(4)?,
        folio: r.i64(5)?,
        fch_emis: r.date(6)?,
        rut_recep: r.text(7)?,
        mnt_total: r.i64(8)?,
        rzn_soc: r.text(9)?,
        estado: r.i32(10)?,
        glosa: r.text(11)?,
        checks: r.text(12)?,
        state: r.text(13)?,
        sii_reception: r.opt(14, Vals::ts)?,
        deadline: r.opt(15, Vals::ts)?,
        decision: r.opt(16, Vals::text)?,
        decided_at: r.opt(17, Vals::ts)?,
        reason: r.opt(18, Vals::text)?,
        created_at: r.ts(19)?,
        cod_envio: r.i64(20)?,
        sender: r.opt(21, Vals::text)?,
    })
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub code: String,
    pub description: String,
    pub responsible: Option<String>,
    pub at: DateTime<Utc>,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct ResponseRow {
    pub id: i64,
    pub company: String,
    pub kind: String,
    pub to_address: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const RESPONSE_COLS: &str = "id, company, kind, to_address, state, attempts, last_error, sent_at, created_at";

fn response(r: &Vals) -> Result<ResponseRow, StoreError> {
    Ok(ResponseRow {
        id: r.i64(0)?,
        company: r.text(1)?,
        kind: r.text(2)?,
        to_address: r.opt(3, Vals::text)?,
        state: r.text(4)?,
        attempts: r.i64(5)?,
        last_error: r.opt(6, Vals::text)?,
        sent_at: r.opt(7, Vals::ts)?,
        created_at: r.ts(8)?,
    })
}

/// The exchange's two event tables, with the same columns: a received document's events and an
/// issued document's (its buyer's answers, the RCV's history).
#[derive(Debug, Clone, Copy)]
pub(super) enum Events {
    Received,
    Issued,
}

impl Events {
    fn table(self) -> &'static str {
        match self {
            Events::Received => "received_events",
            Events::Issued => "document_events",
        }
    }
}

/// Records `e` for document `id` unless it is there already (same code and time); true when new.
pub(super) async fn insert_event(tx: &mut Tx, events: Events, id: i64, e: &EventRow) -> Result<bool, StoreError> {
    let n = tx
        .exec(
            &format!(
                "INSERT INTO {} (document_id, code, description, responsible, at, source) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (document_id, code, at) DO NOTHING",
                events.table()
            ),
            args![id, e.code.as_str(), e.description.as_str(), e.responsible.clone(), e.at, e.source.as_str()],
        )
        .await?;
    Ok(n > 0)
}

/// The events of document `id`, oldest first.
pub(super) async fn events_of(store: &Store, events: Events, id: i64) -> Result<Vec<EventRow>, StoreError> {
    store
        .query(
            &format!(
                "SELECT code, description, responsible, at, source FROM {} WHERE document_id = $1 ORDER BY at, id",
                events.table()
            ),
            args![id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(EventRow {
                code: r.text(0)?,
                description: r.text(1)?,
                responsible: r.opt(2, Vals::text)?,
                at: r.ts(3)?,
                source: r.text(4)?,
            })
        })
        .collect()
}

/// Which received documents to list.
#[derive(Debug, Clone, Default)]
pub struct ReceivedFilter {
    pub state: Option<String>,
    pub emisor: Option<String>,
    pub deadline_before: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: i64,
}

async fn insert_response(
    tx: &mut Tx,
    company: &str,
    r: &NewResponse,
    envelope: Option<i64>,
    document: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let state = if r.to_address.is_some() { "pending" } else { "no_address" };
    tx.exec(
        "INSERT INTO exchange_responses (company, kind, envelope_id, document_id, xml, to_address, state, attempts, next_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)",
        args![company, r.kind.as_str(), envelope, document, r.xml.clone(), r.to_address.clone(), state, now],
    )
    .await?;
    Ok(())
}

impl Store {
    pub async fn put_mailbox(&self, m: MailboxRow, audit: NewAudit, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        tx.exec(
            "INSERT INTO mailboxes (company, imap_url, username, password, folder, poll_seconds, smtp_url, smtp_username, smtp_password, from_address, last_uid, failures, next_poll_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, $11, $11)
             ON CONFLICT (company) DO UPDATE SET imap_url = $2, username = $3, password = $4, folder = $5, poll_seconds = $6,
               smtp_url = $7, smtp_username = $8, smtp_password = $9, from_address = $10, next_poll_at = $11, updated_at = $11,
               failures = 0, last_error = NULL,
               uid_validity = CASE WHEN mailboxes.imap_url = $2 AND mailboxes.username = $3 AND mailboxes.folder = $5 THEN mailboxes.uid_validity ELSE NULL END,
               last_uid = CASE WHEN mailboxes.imap_url = $2 AND mailboxes.username = $3 AND mailboxes.folder = $5 THEN mailboxes.last_uid ELSE 0 END",
            args![
                m.company.as_str(),
                m.imap_url,
                m.username,
                m.password,
                m.folder,
                m.poll_seconds,
                m.smtp_url,
                m.smtp_username,
                m.smtp_password,
                m.from_address,
                now
            ],
        )
        .await?;
        append_audit(&mut tx, &audit, now).await?;
        tx.commit().await
    }

    pub async fn get_mailbox(&self, company: &str) -> Result<Option<MailboxRow>, StoreError> {
        self.query_opt(&format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE company = $1"), args![company])
            .await?
            .map(|r| mailbox(&r))
            .transpose()
    }

    /// One mailbox due for polling, leased to the caller.
    pub async fn lease_mailbox(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<MailboxRow>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let l = skip_locked(&tx);
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {MAILBOX_COLS} FROM mailboxes WHERE next_poll_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
                     ORDER BY next_poll_at LIMIT 1{l}"
                ),
                args![now],
            )
            .await?;
        let Some(row) = row else {
            tx.rollback().await;
            return Ok(None);
        };
        let m = mailbox(&row)?;
        tx.exec("UPDATE mailboxes SET lease_until = $1 WHERE company = $2", args![now + lease, m.company.as_str()])
            .await?;
        tx.commit().await?;
        Ok(Some(m))
    }

    /// The next poll is due now; false when the company has no mailbox.
    pub async fn poll_mailbox_now(&self, company: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.exec("UPDATE mailboxes SET next_poll_at = $2 WHERE company = $1", args![company, now]).await? > 0)
    }

    /// Where a poll got to: the folder's UIDVALIDITY and the last UID taken.
    pub async fn mailbox_progress(&self, company: &str, uid_validity: i64, last_uid: i64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE mailboxes SET uid_validity = $2, last_uid = $3 WHERE company = $1",
            args![company, uid_validity, last_uid],
        )
        .await
        .map(|_| ())
    }

    /// A poll ended: the next one is due at `next`; `error` counts a failure.
    pub async fn mailbox_polled(
        &self,
        company: &str,
        error: Option<&str>,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE mailboxes SET lease_until = NULL, next_poll_at = $2, last_poll_at = $3, last_error = $4::text,
               failures = CASE WHEN $4::text IS NULL THEN 0 ELSE failures + 1 END WHERE company = $1",
            args![company, next, now, error],
        )
        .await
        .map(|_| ())
    }

    pub async fn message_taken(&self, company: &str, message_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .query_opt(
                "SELECT 1 FROM received_messages WHERE company = $1 AND message_id = $2",
                args![company, message_id],
            )
            .await?
            .is_some())
    }

    /// Envelope digests already received OK, and DTEs already received, among those given.
    pub async fn received_before(
        &self,
        company: &str,
        digests: &[String],
        dtes: &[(String, i32, i64)],
    ) -> Result<(Vec<String>, Vec<(String, i32, i64)>), StoreError> {
        let mut seen_env = Vec::new();
        for d in digests.iter().filter(|d| !d.is_empty()) {
            if self
                .query_opt(
                    "SELECT 1 FROM received_envelopes WHERE company = $1 AND digest = $2 AND estado = 0",
                    args![company, d.as_str()],
                )
                .await?
                .is_some()
            {
                seen_env.push(d.clone());
            }
        }
        let mut seen = Vec::new();
        for (e, t, f) in dtes {
            if self
                .query_opt(
                    "SELECT 1 FROM received_documents WHERE company = $1 AND rut_emisor = $2 AND tipo = $3 AND folio = $4",
                    args![company, e.as_str(), *t, *f],
                )
                .await?
                .is_some()
            {
                seen.push((e.clone(), *t, *f));
            }
        }
        Ok((seen_env, seen))
    }

    /// Records a message, its envelopes and DTEs, the technical answer and the webhook events in
    /// one transaction. `None` when the message was taken before (by this or another instance);
    /// `Conflict` when a DTE was received meanwhile (the caller reads the message again).
    pub async fn record_intake(
        &self,
        msg: NewMessage,
        envelopes: Vec<NewEnvelope>,
        answer: Option<NewResponse>,
        events: impl Fn(&NewReceived, i64) -> String,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let company = msg.company.clone();
        let mut tx = Tx::begin(self).await?;
        let id = tx
            .query_opt(
                "INSERT INTO received_messages (company, message_id, digest, source, sender, subject, raw, outcome, note, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (company, message_id) DO NOTHING RETURNING id",
                args![
                    company.as_str(),
                    msg.message_id,
                    msg.digest,
                    msg.source,
                    msg.sender,
                    msg.subject,
                    msg.raw,
                    msg.outcome,
                    msg.note,
                    now
                ],
            )
            .await?;
        let Some(id) = id else {
            tx.rollback().await;
            return Ok(None);
        };
        let message = id.i64(0)?;
        let mut first_envelope = None;
        let mut hooks = Vec::new();
        for e in envelopes {
            let env_id = tx
                .query_opt(
                    "INSERT INTO received_envelopes (company, message_id, filename, envio_id, cod_envio, digest, rut_emisor, rut_receptor, contact, estado, glosa, checks, xml, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                    args![
                        company.as_str(),
                        message,
                        e.filename,
                        e.envio_id,
                        e.cod_envio,
                        e.digest,
                        e.rut_emisor,
                        e.rut_receptor,
                        e.contact,
                        e.estado,
                        e.glosa,
                        e.checks,
                        e.xml,
                        now
                    ],
                )
                .await?
                .ok_or_else(|| StoreError::Db("no id for the envelope".into()))?
                .i64(0)?;
            first_envelope.get_or_insert(env_id);
            for d in &e.docs {
                let doc = tx
                    .query_opt(
                        "INSERT INTO received_documents (company, envelope_id, rut_emisor, tipo, folio, fch_emis, rut_recep, mnt_total, rzn_soc, xml, estado, glosa, checks, state, next_rcv_at, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'received', $14, $15)
                         ON CONFLICT (company, rut_emisor, tipo, folio) DO NOTHING RETURNING id",
                        args![
                            company.as_str(),
                            env_id,
                            d.rut_emisor.as_str(),
                            d.tipo,
                            d.folio,
                            d.fch_emis,
                            d.rut_recep.as_str(),
                            d.mnt_total,
                            d.rzn_soc.as_str(),
                            d.xml.clone(),
                            d.estado,
                            d.glosa.as_str(),
                            d.checks.as_str(),
                            d.next_rcv_at,
                            now
                        ],
                    )
                    .await?;
                let Some(doc) = doc else {
                    tx.rollback().await;
                    return Err(StoreError::Conflict(format!(
                        "DTE {} {} of {} was received meanwhile",
                        d.tipo, d.folio, d.rut_emisor
                    )));
                };
                hooks.push(events(d, doc.i64(0)?));
            }
        }
        if let Some(a) = &answer {
            insert_response(&mut tx, &company, a, first_envelope, None, now).await?;
        }
        enqueue_events(&mut tx, &company, &hooks, now).await?;
        tx.commit().await?;
        Ok(Some(message))
    }

    pub async fn list_received(&self, company: &str, f: &ReceivedFilter) -> Result<Vec<ReceivedRow>, StoreError> {
        self.query(
            &format!(
                "SELECT {RECEIVED_COLS} FROM {RECEIVED_FROM} WHERE d.company = $1 AND ($2::text IS NULL OR d.state = $2::text)
                 AND ($3::text IS NULL OR d.rut_emisor = $3::text) AND ($4::timestamptz IS NULL OR d.deadline <= $4::timestamptz)
                 AND ($5::bigint IS NULL OR d.id < $5::bigint) ORDER BY d.id DESC LIMIT $6"
            ),
            args![company, f.state.clone(), f.emisor.clone(), f.deadline_before, f.before, f.limit],
        )
        .await?
        .iter()
        .map(received)
        .collect()
    }

    pub async fn get_received(
        &self,
        company: &str,
        emisor: &str,
        tipo: i32,
        folio: i64,
    ) -> Result<Option<ReceivedRow>, StoreError> {
        self.query_opt(
            &format!(
                "SELECT {RECEIVED_COLS} FROM {RECEIVED_FROM} WHERE d.company = $1 AND d.rut_emisor = $2 AND d.tipo = $3 AND d.folio = $4"
            ),
            args![company, emisor, tipo, folio],
        )
        .await?
        .map(|r| received(&r))
        .transpose()
    }

    pub async fn received_xml(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.query_opt("SELECT xml FROM received_documents WHERE id = $1", args![id])
            .await?
            .map(|r| r.bytes(0))
            .transpose()
    }

    pub async fn received_events(&self, id: i64) -> Result<Vec<EventRow>, StoreError> {
        events_of(self, Events::Received, id).await
    }

    /// Adds RCV events not recorded yet; true when any was new.
    pub async fn add_received_events(&self, id: i64, events: &[EventRow]) -> Result<bool, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let mut new = false;
        for e in events {
            new |= insert_event(&mut tx, Events::Received, id, e).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// A decision registered: state, event, answers for the supplier and the webhook event.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_decision(
        &self,
        row: &ReceivedRow,
        accion: &str,
        state: &str,
        reason: Option<&str>,
        event: EventRow,
        answers: Vec<NewResponse>,
        hook: String,
        audit: NewAudit,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = Tx::begin(self).await?;
        // Two instances deciding the same thing at once record it once.
        let changed = tx
            .query_opt(
                "UPDATE received_documents SET state = $2, decision = $3, decided_at = $4, reason = $5
                 WHERE id = $1 AND state <> 'accepted_by_law' AND (decision IS NULL OR decision <> $3) RETURNING id",
                args![row.id, state, accion, now, reason],
            )
            .await?;
        if changed.is_none() {
            tx.rollback().await;
            return Ok(false);
        }
        append_audit(&mut tx, &audit, now).await?;
        insert_event(&mut tx, Events::Received, row.id, &event).await?;
        for a in &answers {
            insert_response(&mut tx, &row.company, a, Some(row.envelope_id), Some(row.id), now).await?;
        }
        enqueue_events(&mut tx, &row.company, &[hook], now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// RCV documents due for a look at the SII (reception date, then history), held for `hold`
    /// so that one instance asks for each.
    pub async fn reception_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        hold: chrono::Duration,
    ) -> Result<Vec<ReceivedRow>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let l = if tx.is_postgres() { " FOR UPDATE OF d SKIP LOCKED" } else { "" };
        let rows = tx
            .query(
                &format!(
                    "SELECT {RECEIVED_COLS} FROM {RECEIVED_FROM} WHERE d.next_rcv_at IS NOT NULL AND d.next_rcv_at <= $1
                     ORDER BY d.next_rcv_at LIMIT $2{l}"
                ),
                args![now, limit],
            )
            .await?
            .iter()
            .map(received)
            .collect::<Result<Vec<_>, _>>()?;
        for r in &rows {
            tx.exec("UPDATE received_documents SET next_rcv_at = $2 WHERE id = $1", args![r.id, now + hold]).await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// The SII's reception date (and so the deadline), or when to ask again.
    pub async fn set_reception(
        &self,
        id: i64,
        reception: Option<(DateTime<Utc>, DateTime<Utc>)>,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let (r, d) = reception.unzip();
        self.exec(
            "UPDATE received_documents SET sii_reception = COALESCE($2, sii_reception), deadline = COALESCE($3, deadline), next_rcv_at = $4 WHERE id = $1",
            args![id, r, d, next],
        )
        .await
        .map(|_| ())
    }

    /// A decision taken outside the gateway (the SII's portal), seen in the RCV's history.
    pub async fn set_received_state(
        &self,
        r: &ReceivedRow,
        state: &str,
        decision: &str,
        hook: String,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut tx = Tx::begin(self).await?;
        let n = tx
            .exec(
                "UPDATE received_documents SET state = $2, decision = $3, decided_at = COALESCE(decided_at, $4) WHERE id = $1 AND state = 'received'",
                args![r.id, state, decision, now],
            )
            .await?;
        if n > 0 {
            enqueue_events(&mut tx, &r.company, &[hook], now).await?;
        }
        tx.commit().await
    }

    /// Undecided documents whose deadline passed become accepted by law (Ley 19.983 art. 3);
    /// one event and one webhook each.
    pub async fn expire_deadlines(
        &self,
        now: DateTime<Utc>,
        hook: impl Fn(&ReceivedRow) -> String,
    ) -> Result<usize, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let l = if tx.is_postgres() { " FOR UPDATE OF d SKIP LOCKED" } else { "" };
        let rows = tx
            .query(
                &format!(
                    "SELECT {RECEIVED_COLS} FROM {RECEIVED_FROM} WHERE d.state = 'received' AND d.deadline < $1 AND d.next_rcv_at IS NULL LIMIT 200{l}"
                ),
                args![now],
            )
            .await?
            .iter()
            .map(received)
            .collect::<Result<Vec<_>, _>>()?;
        for r in &rows {
            tx.exec(
                "UPDATE received_documents SET state = 'accepted_by_law', decided_at = $2 WHERE id = $1",
                args![r.id, now],
            )
            .await?;
            tx.exec(
                "INSERT INTO received_events (document_id, code, description, responsible, at, source) VALUES ($1, 'LEY', $2, NULL, $3, 'gateway')
                 ON CONFLICT (document_id, code, at) DO NOTHING",
                args![r.id, "Aceptado por el plazo de 8 días sin reclamo (Ley 19.983)", now],
            )
            .await?;
            let mut r = r.clone();
            r.state = "accepted_by_law".into();
            enqueue_events(&mut tx, &r.company, &[hook(&r)], now).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Undecided documents within `within` of their deadline, not notified yet: marked, one
    /// webhook each.
    pub async fn deadlines_near(
        &self,
        now: DateTime<Utc>,
        within: chrono::Duration,
        hook: impl Fn(&ReceivedRow) -> String,
    ) -> Result<usize, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let l = if tx.is_postgres() { " FOR UPDATE OF d SKIP LOCKED" } else { "" };
        let rows = tx
            .query(
                &format!(
                    "SELECT {RECEIVED_COLS} FROM {RECEIVED_FROM} WHERE d.state = 'received' AND d.deadline_notified = 0
                     AND d.deadline <= $1 AND d.deadline >= $2 LIMIT 200{l}"
                ),
                args![now + within, now],
            )
            .await?
            .iter()
            .map(received)
            .collect::<Result<Vec<_>, _>>()?;
        for r in &rows {
            tx.exec("UPDATE received_documents SET deadline_notified = 1 WHERE id = $1", args![r.id]).await?;
            enqueue_events(&mut tx, &r.company, &[hook(r)], now).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// For the gauges: received documents by state, and per company the undecided ones due within `within`.
    pub async fn received_counts(
        &self,
        now: DateTime<Utc>,
        within: chrono::Duration,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>), StoreError> {
        let by_state = self
            .query("SELECT state, COUNT(*) FROM received_documents GROUP BY state", args![])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.i64(1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let near = self
            .query(
                "SELECT company, COUNT(*) FROM received_documents WHERE state = 'received' AND deadline <= $1 GROUP BY company",
                args![now + within],
            )
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.i64(1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((by_state, near))
    }

    /// A request's remembered answer under an idempotency key: `(request hash, answer)`.
    pub async fn idem_lookup(
        &self,
        key_id: &str,
        idem_key: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        self.query_opt(
            "SELECT request_hash, response FROM idempotency WHERE key_id = $1 AND idem_key = $2",
            args![key_id, idem_key],
        )
        .await?
        .map(|r| Ok((r.text(0)?, r.opt(1, Vals::text)?)))
        .transpose()
    }

    pub async fn idem_remember(
        &self,
        key_id: &str,
        idem_key: &str,
        hash: &str,
        answer: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO idempotency (key_id, idem_key, request_hash, response, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key_id, idem_key) DO NOTHING",
            args![key_id, idem_key, hash, answer, now],
        )
        .await
        .map(|_| ())
    }

    pub async fn lease_response(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<(ResponseRow, Vec<u8>)>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let l = skip_locked(&tx);
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {RESPONSE_COLS}, xml FROM exchange_responses WHERE state = 'pending' AND next_at <= $1
                     AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_at LIMIT 1{l}"
                ),
                args![now],
            )
            .await?;
        let Some(row) = row else {
            tx.rollback().await;
            return Ok(None);
        };
        let r = response(&row)?;
        let xml = row.bytes(9)?;
        tx.exec("UPDATE exchange_responses SET lease_until = $1 WHERE id = $2", args![now + lease, r.id]).await?;
        tx.commit().await?;
        Ok(Some((r, xml)))
    }

    /// After an SMTP attempt: `sent`, `pending` again at `next_at`, or `failed` for good.
    pub async fn response_outcome(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
        smtp_id: Option<&str>,
        next_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE exchange_responses SET state = $2, last_error = $3, smtp_id = $4, next_at = $5, attempts = attempts + 1,
               lease_until = NULL, sent_at = CASE WHEN $2 = 'sent' THEN $6 ELSE sent_at END WHERE id = $1",
            args![id, state, error, smtp_id, next_at, now],
        )
        .await
        .map(|_| ())
    }

    /// The answers about a received document (or, with `document` absent, every answer of the company).
    pub async fn list_responses(&self, company: &str, document: Option<i64>) -> Result<Vec<ResponseRow>, StoreError> {
        self.query(
            &format!(
                "SELECT {RESPONSE_COLS} FROM exchange_responses WHERE company = $1 AND ($2::bigint IS NULL OR document_id = $2::bigint
                   OR (kind = 'RecepcionEnvio' AND envelope_id = (SELECT envelope_id FROM received_documents WHERE id = $2::bigint)))
                 ORDER BY id"
            ),
            args![company, document],
        )
        .await?
        .iter()
        .map(response)
        .collect()
    }

    pub async fn response_xml(&self, company: &str, id: i64) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.query_opt("SELECT kind, xml FROM exchange_responses WHERE company = $1 AND id = $2", args![company, id])
            .await?
            .map(|r| Ok((r.text(0)?, r.bytes(1)?)))
            .transpose()
    }
}
