//! Group commit: concurrent issuances of one company and type on this instance share one
//! transaction. Requests queue in the company's lane; one task per busy lane takes everything
//! waiting (what arrived while the previous group committed — no delay is added when idle), locks
//! the CAFs once, takes consecutive folios, stamps and signs the documents in parallel on the
//! signing pool (one long-lived thread per core), writes them and commits
//! once. A document that fails inside the group leaves it and the others are re-numbered before
//! the commit, so folios stay contiguous; idempotency keys repeated inside a group wait for the
//! next group, where they are answered as the replay they are.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{NaiveDateTime, Utc};
use tokio::sync::oneshot;

use super::{now_local, DocumentInfo, Issue, ServiceError};
use crate::caf::{Caf, CafTrust};
use crate::cert::Certificate;
use crate::domain::rules::Prepared;
use crate::domain::tax::{Computed, TaxTable};
use crate::domain::Company;
use crate::engine::{Issued, Issuer};
use crate::error::DteError;
use crate::folio::{self, CafRange};
use crate::store::{CafRecord, Idem, IdemState, IssuedRow, NewAudit, NewDocument, Store};
use crate::vault::Vault;

/// The most documents one group takes; the rest wait for the next group.
const MAX_GROUP: usize = 256;

/// One document, priced and checked, waiting for its folio.
pub(crate) struct Work {
    pub company: Company,
    pub cert: Arc<Certificate>,
    pub prepared: Prepared,
    pub computed: Computed,
    pub now: NaiveDateTime,
    pub rut: String,
    pub key_id: Option<String>,
    /// The caller's trace context (see `otel`).
    pub trace: Option<String>,
    /// The software provider's RUT for boletas (`RUTProvSW`).
    pub rut_prov_sw: Option<String>,
}

struct Pending {
    work: Arc<Work>,
    idem: Option<Idem>,
    reply: oneshot::Sender<Result<Issue, ServiceError>>,
    queued: Instant,
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<Pending>,
    running: bool,
}

type LaneKey = (String, i32);
/// A document to sign: its index in the group, the work, the CAF, the folio and the CAF's id.
type Job = (usize, Arc<Work>, Arc<Caf>, i64, i64);
/// A signed document and the id of the CAF its folio came from.
type Signed = (Issued, i64);

pub(crate) struct Issuance {
    store: Store,
    vault: Vault,
    trust: CafTrust,
    taxes: Arc<TaxTable>,
    cafs: Mutex<HashMap<i64, Arc<Caf>>>,
    lanes: Mutex<HashMap<LaneKey, Lane>>,
    signing: Arc<super::signing::SigningPool>,
    /// Test hook: a document whose first line is named this fails while being signed, as a
    /// document failing inside a group would. Set only by the test suites.
    fail_item: Option<String>,
}

impl Issuance {
    pub fn new(store: Store, vault: Vault, trust: CafTrust, taxes: Arc<TaxTable>) -> Issuance {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Issuance {
            store,
            vault,
            trust,
            taxes,
            cafs: Mutex::new(HashMap::new()),
            lanes: Mutex::new(HashMap::new()),
            signing: Arc::new(super::signing::SigningPool::new(cores)),
            fail_item: std::env::var("DTE_GATEWAY_TEST_FAIL_ITEM").ok().filter(|s| !s.is_empty()),
        }
    }

    /// Queues one document in its lane and waits for its group's answer.
    pub async fn submit(self: &Arc<Self>, work: Work, idem: Option<Idem>) -> Result<Issue, ServiceError> {
        let key = (work.rut.clone(), work.prepared.tipo.code() as i32);
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut lanes = self.lanes.lock().map_err(|_| ServiceError::Internal("issuance lanes".into()))?;
            let lane = lanes.entry(key.clone()).or_default();
            lane.queue.push_back(Pending { work: Arc::new(work), idem, reply, queued: Instant::now() });
            !std::mem::replace(&mut lane.running, true)
        };
        if start {
            // Its own task: a client that hangs up must not cancel a group others wait on.
            tokio::spawn(self.clone().run_lane(key));
        }
        answer.await.map_err(|_| ServiceError::Internal("the issuance group stopped before answering".into()))?
    }

    async fn run_lane(self: Arc<Self>, key: LaneKey) {
        loop {
            let group = {
                let Ok(mut lanes) = self.lanes.lock() else { return };
                let Some(lane) = lanes.get_mut(&key) else { return };
                if lane.queue.is_empty() {
                    lanes.remove(&key);
                    return;
                }
                take_group(&mut lane.queue)
            };
            // A panic inside a group drops its answers (those clients get an error) but leaves
            // the lane serving the next group.
            let this = self.clone();
            let k = key.clone();
            if let Err(e) = tokio::spawn(async move { this.issue_group(&k, group).await }).await {
                tracing::error!(company = %key.0, tipo = key.1, error = %e, "an issuance group failed");
            }
        }
    }

    async fn issue_group(self: &Arc<Self>, key: &LaneKey, group: Vec<Pending>) {
        metrics::histogram!(crate::telemetry::ISSUANCE_GROUP_SIZE).record(group.len() as f64);
        // The CAFs must be valid on the day each document is dated (a group may straddle midnight).
        let today = group.iter().map(|p| p.work.now.date()).min().unwrap_or_else(|| now_local().date());
        let idems: Vec<Option<Idem>> = group.iter().map(|p| p.idem.clone()).collect();
        let lock = match self.store.lock_folios(&key.0, key.1, today, &idems).await {
            Ok(l) => l,
            Err(e) => {
                let msg = e.to_string();
                for p in group {
                    let _ = p.reply.send(Err(ServiceError::Internal(msg.clone())));
                }
                return;
            }
        };
        let mut todo = Vec::with_capacity(group.len());
        for (p, state) in group.into_iter().zip(lock.idem.iter().cloned()) {
            match state {
                IdemState::New => todo.push(p),
                IdemState::Replay(r) => {
                    let _ = p.reply.send(Ok(Issue::Replayed(r)));
                }
                IdemState::Mismatch => {
                    let _ = p.reply.send(Err(ServiceError::IdempotencyMismatch));
                }
            }
        }
        if todo.is_empty() {
            lock.release().await;
            return;
        }
        let (outcomes, advanced) = self.stamp(&lock.cafs, &todo, key.1 as u16).await;
        let now = Utc::now();
        let mut rows = Vec::new();
        let mut answers: Vec<Option<Result<Issue, ServiceError>>> = Vec::with_capacity(todo.len());
        for (p, outcome) in todo.iter().zip(outcomes) {
            match outcome {
                Ok((issued, caf_id)) => {
                    let (row, response) = row(&p.work, issued, caf_id, p.idem.clone(), now);
                    rows.push(row);
                    answers.push(Some(Ok(Issue::Created(response))));
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let stored = rows.len();
        if let Err(e) = lock.commit(rows, advanced, now).await {
            // Nothing of the group was stored: every document of it fails alike.
            let msg = e.to_string();
            for a in answers.iter_mut().filter(|a| matches!(a, Some(Ok(_)))) {
                *a = Some(Err(ServiceError::Internal(msg.clone())));
            }
        } else if stored > 0 {
            metrics::counter!(crate::telemetry::DOCUMENTS_ISSUED, "tipo" => key.1.to_string(), "company" => key.0.clone())
                .increment(stored as u64);
        }
        for (p, a) in todo.into_iter().zip(answers) {
            if let Some(a) = a {
                if a.is_ok() {
                    metrics::histogram!(crate::telemetry::ISSUANCE_SECONDS).record(p.queued.elapsed().as_secs_f64());
                }
                let _ = p.reply.send(a);
            }
        }
    }

    /// Folios for every document of the group and its signed DTE, or its error. A failure takes
    /// the document out and the rest are allocated again, so the folios that get stored are
    /// consecutive; only documents whose folio changed are signed again.
    async fn stamp(
        &self,
        cafs: &[CafRecord],
        todo: &[Pending],
        tipo: u16,
    ) -> (Vec<Result<Signed, ServiceError>>, Vec<(i64, i64)>) {
        let ranges: Vec<CafRange> =
            cafs.iter().map(|c| CafRange { caf_id: c.id, next: c.next_folio, hasta: c.hasta }).collect();
        let mut failed: Vec<Option<ServiceError>> = (0..todo.len()).map(|_| None).collect();
        let mut signed: Vec<Option<Signed>> = (0..todo.len()).map(|_| None).collect();
        loop {
            let live: Vec<usize> = (0..todo.len()).filter(|i| failed[*i].is_none()).collect();
            let alloc = folio::allocate(&ranges, live.len());
            let mut jobs = Vec::new();
            for (i, f) in live.iter().zip(&alloc.folios) {
                let current = signed[*i].as_ref().is_some_and(|(s, caf)| s.folio as i64 == f.folio && *caf == f.caf_id);
                if current {
                    continue;
                }
                signed[*i] = None;
                match cafs.iter().find(|c| c.id == f.caf_id).map(|c| self.caf(c)) {
                    Some(Ok(caf)) => jobs.push((*i, todo[*i].work.clone(), caf, f.folio, f.caf_id)),
                    Some(Err(e)) => failed[*i] = Some(ServiceError::Dte(e)),
                    None => failed[*i] = Some(ServiceError::Internal("allocated CAF not locked".into())),
                }
            }
            let mut again = live.iter().any(|i| failed[*i].is_some());
            for (i, result) in self.sign_all(jobs).await {
                match result {
                    Ok(s) => signed[i] = Some(s),
                    Err(e) => {
                        failed[i] = Some(e);
                        again = true;
                    }
                }
            }
            if again {
                continue;
            }
            let mut out = Vec::with_capacity(todo.len());
            for i in 0..todo.len() {
                out.push(match (failed[i].take(), signed[i].take()) {
                    (Some(e), _) => Err(e),
                    (None, Some(s)) => Ok(s),
                    (None, None) => Err(ServiceError::CafExhausted(tipo)),
                });
            }
            return (out, alloc.advanced);
        }
    }

    /// Signs on the signing pool, split into as many chunks as it has threads. Every job gets an
    /// answer: a panic is an internal (retryable) error of its chunk's documents, never a gap.
    async fn sign_all(&self, jobs: Vec<Job>) -> Vec<(usize, Result<Signed, ServiceError>)> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let per = jobs.len().div_ceil(self.signing.threads.max(1));
        let mut chunks = Vec::new();
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let chunk: Vec<_> = jobs.by_ref().take(per).collect();
            let idx: Vec<usize> = chunk.iter().map(|j| j.0).collect();
            let (taxes, fail) = (self.taxes.clone(), self.fail_item.clone());
            let run = self.signing.run(move || {
                chunk
                    .into_iter()
                    .map(|(i, w, caf, folio, caf_id)| {
                        let r = sign(&w, &caf, folio, &taxes, fail.as_deref()).map(|s| (s, caf_id));
                        (i, r.map_err(ServiceError::Dte))
                    })
                    .collect::<Vec<_>>()
            });
            chunks.push((idx, run));
        }
        let mut out = Vec::new();
        for (idx, done) in
            futures_util::future::join_all(chunks.into_iter().map(|(idx, run)| async move { (idx, run.await) })).await
        {
            match done {
                Some(v) => out.extend(v),
                None => {
                    out.extend(idx.into_iter().map(|i| (i, Err(ServiceError::Internal("signing panicked".into())))))
                }
            }
        }
        out
    }

    fn caf(&self, rec: &CafRecord) -> Result<Arc<Caf>, DteError> {
        if let Some(c) = self.cafs.lock().ok().and_then(|m| m.get(&rec.id).cloned()) {
            return Ok(c);
        }
        let xml =
            self.vault.open(&rec.sealed, rec.company.as_bytes()).map_err(|e| DteError::Malformed(e.to_string()))?;
        let caf = Arc::new(Caf::load(&xml, &self.trust)?);
        if let Ok(mut m) = self.cafs.lock() {
            m.insert(rec.id, caf.clone());
        }
        Ok(caf)
    }
}

/// The group: everything waiting, up to [`MAX_GROUP`], except a second document with an
/// idempotency key already in the group (it stays first in line for the next group).
fn take_group(queue: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut group: Vec<Pending> = Vec::new();
    let mut held = VecDeque::new();
    while group.len() < MAX_GROUP {
        let Some(p) = queue.pop_front() else { break };
        let repeated = p.idem.as_ref().is_some_and(|i| {
            group.iter().filter_map(|g| g.idem.as_ref()).any(|g| g.key_id == i.key_id && g.key == i.key)
        });
        if repeated {
            held.push_back(p);
        } else {
            group.push(p);
        }
    }
    while let Some(p) = held.pop_back() {
        queue.push_front(p);
    }
    group
}

fn sign(w: &Work, caf: &Caf, folio: i64, taxes: &TaxTable, fail: Option<&str>) -> Result<Issued, DteError> {
    if fail.is_some_and(|f| w.prepared.doc.detalle.first().is_some_and(|d| d.nmb_item == f)) {
        return Err(DteError::Xml("failure forced by the test hook".into()));
    }
    let issuer = Issuer {
        company: &w.company,
        cert: &w.cert,
        taxes,
        validate_schema: true,
        rut_prov_sw: w.rut_prov_sw.as_deref(),
        // Applied when the document was priced, before its folio (Service::issue).
        uf_pesos: None,
    };
    let issued = issuer.issue_prepared(&w.prepared, &w.computed, caf, folio as u64, w.now)?;
    for (stage, secs) in [("sign", issued.timings.sign), ("validate", issued.timings.validate)] {
        metrics::histogram!(crate::telemetry::ISSUANCE_STAGE_SECONDS, "stage" => stage).record(secs);
    }
    Ok(issued)
}

fn row(
    w: &Work,
    issued: Issued,
    caf_id: i64,
    idem: Option<Idem>,
    now: chrono::DateTime<Utc>,
) -> (IssuedRow, serde_json::Value) {
    let tipo = issued.tipo.code() as i32;
    let folio = issued.folio as i64;
    // `check_ranges` keeps every total within 18 digits, well inside an i64.
    let mnt_total = rust_decimal::prelude::ToPrimitive::to_i64(&issued.totals.mnt_total.trunc()).unwrap_or_default();
    let totals = serde_json::to_value(&issued.totals).unwrap_or_default();
    let info = DocumentInfo {
        company: w.rut.clone(),
        tipo,
        folio,
        id: issued.id.clone(),
        fch_emis: w.prepared.fch_emis(),
        rut_recep: w.prepared.rut_recep.to_string(),
        mnt_total,
        totals: totals.clone(),
        state: crate::domain::DocState::Issued,
        created_at: now,
        xml_url: format!("/v1/companies/{}/documents/{tipo}/{folio}/xml", w.rut),
        ted: Some(issued.ted.clone()),
    };
    let response = serde_json::to_value(&info).unwrap_or_default();
    let doc = NewDocument {
        company: w.rut.clone(),
        tipo,
        folio,
        caf_id,
        fch_emis: info.fch_emis,
        rut_recep: info.rut_recep,
        mnt_total,
        totals,
        xml: issued.xml,
        ted: issued.ted,
        api_key_id: w.key_id.clone(),
        trace: w.trace.clone(),
    };
    let audit = NewAudit {
        scope: w.rut.clone(),
        action: "document.issue",
        subject: format!("T{tipo} F{folio}"),
        data: w.key_id.clone().unwrap_or_else(|| "cli".into()),
    };
    (IssuedRow { doc, response: response.clone(), idem, audit }, response)
}
