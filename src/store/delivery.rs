//! Delivering issued documents to their buyers, written once for both backends: the buyer
//! directory (the SII's list and each company's own addresses), deliveries claimed per buyer and
//! leased like uploads, the buyers' answers and the RCV's events of issued documents.

use chrono::{DateTime, Utc};

use super::received::{events_of, insert_event, Events};
use super::sii_ops::{enqueue_events, skip_locked, DELIVERED_TYPES};
use super::sql::{args, value_rows, Tx, Vals};
use super::*;

/// A delivery leased for sending, with its documents `(id, tipo, folio, xml)`.
#[derive(Debug, Clone)]
pub struct DeliveryOut {
    pub id: i64,
    pub company: String,
    pub buyer: String,
    pub attempts: i64,
    pub documents: Vec<(i64, i32, i64, Vec<u8>)>,
}

#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: i64,
    pub to_address: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub smtp_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// An issued document's exchange: delivery, the buyer's answers, RCV events.
#[derive(Debug, Clone)]
pub struct DocumentExchange {
    pub id: i64,
    pub rut_recep: String,
    pub delivery_state: Option<String>,
    pub buyer_state: Option<String>,
    pub deliveries: Vec<DeliveryRecord>,
    pub events: Vec<EventRow>,
}

fn delivery_record(r: &Vals) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: r.i64(0)?,
        to_address: r.opt(1, Vals::text)?,
        state: r.text(2)?,
        attempts: r.i64(3)?,
        last_error: r.opt(4, Vals::text)?,
        smtp_id: r.opt(5, Vals::text)?,
        created_at: r.ts(6)?,
        sent_at: r.opt(7, Vals::ts)?,
    })
}

impl Store {
    /// Adds or replaces rows of the SII's list of authorised taxpayers `(rut, name, email)`.
    pub async fn upsert_directory(
        &self,
        rows: &[(String, String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One statement per 200 rows; a RUT twice in a slice keeps its last row (one statement may
        // not update a row twice).
        let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, (rut, _, _)) in rows.iter().enumerate() {
            last.insert(rut.as_str(), i);
        }
        let kept: Vec<&(String, String, String)> = rows
            .iter()
            .enumerate()
            .filter(|(i, (rut, _, _))| last.get(rut.as_str()) == Some(i))
            .map(|(_, r)| r)
            .collect();
        let mut tx = Tx::begin(self).await?;
        for chunk in kept.chunks(200) {
            let mut a = Vec::with_capacity(chunk.len() * 4);
            for (rut, name, email) in chunk {
                a.extend(args![rut.as_str(), name.as_str(), email.as_str(), now]);
            }
            tx.exec(
                &format!(
                    "INSERT INTO buyer_directory (rut, rzn_soc, email, updated_at) VALUES {}
                     ON CONFLICT (rut) DO UPDATE SET rzn_soc = excluded.rzn_soc, email = excluded.email, updated_at = excluded.updated_at",
                    value_rows(1, chunk.len(), 4, &[])
                ),
                a,
            )
            .await?;
        }
        tx.commit().await
    }

    pub async fn directory_size(&self) -> Result<i64, StoreError> {
        self.query_opt("SELECT COUNT(*) FROM buyer_directory", args![])
            .await?
            .map(|r| r.i64(0))
            .transpose()
            .map(|n| n.unwrap_or(0))
    }

    pub async fn put_buyer_address(
        &self,
        company: &str,
        rut: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO buyer_addresses (company, rut, email, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (company, rut) DO UPDATE SET email = $3, updated_at = $4",
            args![company, rut, email, now],
        )
        .await
        .map(|_| ())
    }

    pub async fn buyer_addresses(&self, company: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.query("SELECT rut, email FROM buyer_addresses WHERE company = $1 ORDER BY rut", args![company])
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?)))
            .collect()
    }

    /// A buyer's exchange address: the company's own first, then the SII's list; with its source.
    pub async fn buyer_address(&self, company: &str, rut: &str) -> Result<Option<(String, &'static str)>, StoreError> {
        if let Some(r) = self
            .query_opt("SELECT email FROM buyer_addresses WHERE company = $1 AND rut = $2", args![company, rut])
            .await?
        {
            return Ok(Some((r.text(0)?, "company")));
        }
        Ok(self
            .query_opt("SELECT email FROM buyer_directory WHERE rut = $1", args![rut])
            .await?
            .map(|r| r.text(0))
            .transpose()?
            .map(|e| (e, "directory")))
    }

    /// Gathers the due documents of one company and buyer into a new delivery.
    pub async fn claim_buyer_delivery(&self, now: DateTime<Utc>) -> Result<Option<i64>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let l = skip_locked(&tx);
        let Some(row) = tx
            .query_opt(
                &format!("SELECT company, rut_recep FROM documents WHERE delivery_state = 'due' LIMIT 1{l}"),
                args![],
            )
            .await?
        else {
            tx.rollback().await;
            return Ok(None);
        };
        let (company, buyer) = (row.text(0)?, row.text(1)?);
        // A group is the buyer's due documents, 50 at most (a mail of reasonable size); documents
        // to the generic RUT of foreign buyers each go alone (they are different buyers).
        let cap = if buyer == "55555555-5" { 1 } else { 50 };
        let id = tx
            .query_opt(
                "INSERT INTO buyer_deliveries (company, buyer, state, attempts, next_at, created_at) VALUES ($1, $2, 'pending', 0, $3, $3) RETURNING id",
                args![company.as_str(), buyer.as_str(), now],
            )
            .await?
            .ok_or_else(|| StoreError::Db("no id for the delivery".into()))?
            .i64(0)?;
        let n = tx
            .exec(
                &format!(
                    "UPDATE documents SET delivery_state = 'queued', delivery_id = $3 WHERE delivery_state = 'due' AND id IN
                       (SELECT id FROM documents WHERE company = $1 AND rut_recep = $2 AND delivery_state = 'due' ORDER BY id LIMIT $4{l})"
                ),
                args![company.as_str(), buyer.as_str(), id, cap],
            )
            .await?;
        if n == 0 {
            // Another instance took them between the look and the update.
            tx.rollback().await;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(id))
    }

    pub async fn lease_buyer_delivery(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<Option<DeliveryOut>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let l = skip_locked(&tx);
        let Some(row) = tx
            .query_opt(
                &format!(
                    "SELECT id, company, buyer, attempts FROM buyer_deliveries WHERE state = 'pending' AND next_at <= $1
                     AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_at LIMIT 1{l}"
                ),
                args![now],
            )
            .await?
        else {
            tx.rollback().await;
            return Ok(None);
        };
        let id = row.i64(0)?;
        tx.exec("UPDATE buyer_deliveries SET lease_until = $1 WHERE id = $2", args![now + lease, id]).await?;
        let documents = tx
            .query("SELECT id, tipo, folio, xml FROM documents WHERE delivery_id = $1 ORDER BY tipo, folio", args![id])
            .await?
            .iter()
            .map(|r| Ok((r.i64(0)?, r.i32(1)?, r.i64(2)?, r.bytes(3)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        if documents.is_empty() {
            // Its documents were sent again in a newer delivery: nothing is left to send.
            tx.exec("UPDATE buyer_deliveries SET state = 'cancelled', lease_until = NULL WHERE id = $1", args![id])
                .await?;
            tx.commit().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(DeliveryOut { id, company: row.text(1)?, buyer: row.text(2)?, attempts: row.i64(3)?, documents }))
    }

    /// After an attempt: `sent`, `pending` again at `next_at`, or `failed` for good; the documents
    /// follow (`delivered` / `delivery_failed`) with one webhook event each.
    #[allow(clippy::too_many_arguments)]
    pub async fn buyer_delivery_outcome(
        &self,
        d: &DeliveryOut,
        state: &str,
        to: Option<&str>,
        error: Option<&str>,
        smtp_id: Option<&str>,
        next_at: DateTime<Utc>,
        hook: impl Fn(i32, i64) -> String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self).await?;
        tx.exec(
            "UPDATE buyer_deliveries SET state = $2, to_address = COALESCE($3::text, to_address), last_error = $4::text,
               smtp_id = $5::text, next_at = $6, attempts = attempts + 1, lease_until = NULL,
               sent_at = CASE WHEN $2 = 'sent' THEN $7 ELSE sent_at END WHERE id = $1",
            args![d.id, state, to, error, smtp_id, next_at, now],
        )
        .await?;
        let doc_state = match state {
            "sent" => "delivered",
            "failed" => "delivery_failed",
            _ => {
                return tx.commit().await;
            }
        };
        tx.exec("UPDATE documents SET delivery_state = $2 WHERE delivery_id = $1", args![d.id, doc_state]).await?;
        let events: Vec<String> = d.documents.iter().map(|(_, t, f, _)| hook(*t, *f)).collect();
        enqueue_events(&mut tx, &d.company, &events, now).await?;
        tx.commit().await
    }

    /// A new delivery of one accepted document (a resend asked for by hand).
    pub async fn resend_to_buyer(
        &self,
        company: &str,
        tipo: i32,
        folio: i64,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let Some(row) = tx
            .query_opt(
                "SELECT id, rut_recep, state FROM documents WHERE company = $1 AND tipo = $2 AND folio = $3",
                args![company, tipo, folio],
            )
            .await?
        else {
            tx.rollback().await;
            return Err(StoreError::Conflict(format!("document {tipo} {folio} not found")));
        };
        if !matches!(row.text(2)?.as_str(), "accepted" | "accepted_with_objections") || !DELIVERED_TYPES.contains(&tipo)
        {
            tx.rollback().await;
            return Err(StoreError::Conflict(
                "only documents the SII accepted, of a type that goes to buyers, are delivered".into(),
            ));
        }
        let id = tx
            .query_opt(
                "INSERT INTO buyer_deliveries (company, buyer, state, attempts, next_at, created_at) VALUES ($1, $2, 'pending', 0, $3, $3) RETURNING id",
                args![company, row.text(1)?, now],
            )
            .await?
            .ok_or_else(|| StoreError::Db("no id for the delivery".into()))?
            .i64(0)?;
        tx.exec(
            "UPDATE documents SET delivery_state = 'queued', delivery_id = $2 WHERE id = $1",
            args![row.i64(0)?, id],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A buyer's answer about an issued document: its state (a stronger answer is not replaced by
    /// a weaker one), the event and a webhook. False when no such document of `company` to `buyer`.
    #[allow(clippy::too_many_arguments)]
    pub async fn buyer_answer(
        &self,
        company: &str,
        buyer: &str,
        tipo: i32,
        folio: i64,
        state: &str,
        event: EventRow,
        hook: String,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let Some(doc) = tx
            .query_opt(
                "SELECT id, buyer_state FROM documents WHERE company = $1 AND rut_recep = $2 AND tipo = $3 AND folio = $4",
                args![company, buyer, tipo, folio],
            )
            .await?
        else {
            tx.rollback().await;
            return Ok(false);
        };
        let id = doc.i64(0)?;
        // A reception result never replaces a commercial one, and a receipt of goods does not
        // undo a rejection.
        let rank = |s: &str| match s {
            "buyer_received" | "buyer_refused" => 1,
            "buyer_accepted" | "buyer_rejected" => 2,
            "goods_received" => 3,
            _ => 0,
        };
        let current = doc.opt(1, Vals::text)?.unwrap_or_default();
        if rank(state) >= rank(&current) && !(current == "buyer_rejected" && state == "goods_received") {
            tx.exec("UPDATE documents SET buyer_state = $2 WHERE id = $1", args![id, state]).await?;
        }
        if insert_event(&mut tx, Events::Issued, id, &event).await? {
            enqueue_events(&mut tx, company, &[hook], now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Issued 33/34/43 due for a look at their RCV history: `(id, company, tipo, folio, created_at)`.
    /// …held for `hold`, so that one instance asks the SII for each.
    pub async fn issued_rcv_due(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        hold: chrono::Duration,
    ) -> Result<Vec<(i64, String, i32, i64, DateTime<Utc>)>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let l = skip_locked(&tx);
        let rows = tx
            .query(
                &format!(
                    "SELECT id, company, tipo, folio, created_at FROM documents WHERE rcv_next_at IS NOT NULL AND rcv_next_at <= $1
                     ORDER BY rcv_next_at LIMIT $2{l}"
                ),
                args![now, limit],
            )
            .await?
            .iter()
            .map(|r| Ok((r.i64(0)?, r.text(1)?, r.i32(2)?, r.i64(3)?, r.ts(4)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        for r in &rows {
            tx.exec("UPDATE documents SET rcv_next_at = $2 WHERE id = $1", args![r.0, now + hold]).await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    /// The RCV's events of an issued document; the new ones get a webhook each. Returns the new.
    pub async fn issued_rcv_events(
        &self,
        id: i64,
        company: &str,
        events: &[EventRow],
        hook: impl Fn(&EventRow) -> String,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<EventRow>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let mut new = Vec::new();
        for e in events {
            if insert_event(&mut tx, Events::Issued, id, e).await? {
                new.push(e.clone());
            }
        }
        let hooks: Vec<String> = new.iter().map(&hook).collect();
        enqueue_events(&mut tx, company, &hooks, now).await?;
        tx.exec("UPDATE documents SET rcv_next_at = $2 WHERE id = $1", args![id, next]).await?;
        tx.commit().await?;
        Ok(new)
    }

    pub async fn document_exchange(
        &self,
        company: &str,
        tipo: i32,
        folio: i64,
    ) -> Result<Option<DocumentExchange>, StoreError> {
        let Some(d) = self
            .query_opt(
                "SELECT id, rut_recep, delivery_state, buyer_state FROM documents WHERE company = $1 AND tipo = $2 AND folio = $3",
                args![company, tipo, folio],
            )
            .await?
        else {
            return Ok(None);
        };
        let id = d.i64(0)?;
        let deliveries = self
            .query(
                "SELECT b.id, b.to_address, b.state, b.attempts, b.last_error, b.smtp_id, b.created_at, b.sent_at FROM buyer_deliveries b
                 WHERE b.id IN (SELECT delivery_id FROM documents WHERE id = $1) ORDER BY b.id",
                args![id],
            )
            .await?
            .iter()
            .map(delivery_record)
            .collect::<Result<Vec<_>, _>>()?;
        let events = events_of(self, Events::Issued, id).await?;
        Ok(Some(DocumentExchange {
            id,
            rut_recep: d.text(1)?,
            delivery_state: d.opt(2, Vals::text)?,
            buyer_state: d.opt(3, Vals::text)?,
            deliveries,
            events,
        }))
    }
}
