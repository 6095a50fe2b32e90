//! The store's contract, called directly: the same cases run on SQLite and on PostgreSQL, so the
//! two backends cannot drift apart. Issuance groups (folios, idempotency, audit, rollback), the
//! strict parsing of stored values, documents, API keys and the upload hand-off.

mod common;

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use dte_gateway::domain::{Company, DocState, Environment, UploadStatus};
use dte_gateway::store::{
    ApiKeyRecord, CafRecord, CompanyRecord, DocFilter, FolioLock, Idem, IdemState, IssuedRow, NewAudit, NewDocument,
    Store,
};
use serde_json::json;

use common::server::{self, Db};

const RUT: &str = "76192083-9";

const AUDIT_KEY: dte_gateway::store::AuditKey = dte_gateway::store::AuditKey([9; 32]);

async fn open(db: &Db) -> Store {
    let s = Store::open(&db.url(), 4).await.expect("open");
    s.set_audit_key(AUDIT_KEY);
    s
}

fn audit(action: &'static str, subject: &str) -> NewAudit {
    NewAudit { scope: RUT.into(), action, subject: subject.into(), data: "contract".into() }
}

async fn company(store: &Store) {
    let c = Company::from_json(&std::fs::read(common::repo("examples/company.json")).expect("company")).expect("json");
    let rec =
        CompanyRecord { rut: RUT.into(), company: c, environment: Environment::Certificacion, created_at: Utc::now() };
    store.create_company(rec, audit("company.create", RUT)).await.expect("create");
}

async fn caf(store: &Store, desde: i64, hasta: i64) -> i64 {
    let rec = CafRecord {
        id: 0,
        company: RUT.into(),
        tipo: 33,
        desde,
        hasta,
        next_folio: desde,
        fa: NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
        expires_on: None,
        idk: 100,
        authority: "Test".into(),
        sealed: b"opaque".to_vec(),
        created_at: Utc::now(),
        retired_at: None,
    };
    store.add_caf(rec, audit("caf.add", "T33")).await.expect("caf")
}

fn idem(key: &str, hash: &str) -> Option<Idem> {
    Some(Idem { key_id: "key_contract".into(), key: key.into(), request_hash: hash.into() })
}

/// Stores a document for every folio of `lock` the group allocated, in order.
fn rows(lock: &FolioLock, idems: &[Option<Idem>]) -> (Vec<IssuedRow>, Vec<(i64, i64)>) {
    let ranges: Vec<_> = lock
        .cafs
        .iter()
        .map(|c| dte_gateway::folio::CafRange { caf_id: c.id, next: c.next_folio, hasta: c.hasta })
        .collect();
    let alloc = dte_gateway::folio::allocate(&ranges, idems.len());
    let rows = alloc
        .folios
        .iter()
        .zip(idems)
        .map(|(f, i)| IssuedRow {
            doc: NewDocument {
                company: RUT.into(),
                tipo: 33,
                folio: f.folio,
                caf_id: f.caf_id,
                fch_emis: NaiveDate::from_ymd_opt(2026, 11, 30).expect("date"),
                rut_recep: "76555835-2".into(),
                mnt_total: 1190,
                totals: json!({"MntTotal": 1190}),
                xml: format!("<DTE folio=\"{}\"/>", f.folio).into_bytes(),
                ted: "<TED/>".into(),
                api_key_id: Some("key_contract".into()),
                trace: None,
            },
            response: json!({"folio": f.folio}),
            idem: i.clone(),
            audit: audit("document.issue", &format!("T33 F{}", f.folio)),
        })
        .collect();
    (rows, alloc.advanced)
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).expect("date")
}

async fn issue(store: &Store, idems: &[Option<Idem>]) -> Vec<i64> {
    let lock = store.lock_folios(RUT, 33, today(), idems).await.expect("lock");
    let (rows, advanced) = rows(&lock, idems);
    lock.commit(rows, advanced, Utc::now()).await.expect("commit").iter().map(|d| d.folio).collect()
}

async fn groups_take_consecutive_folios_across_cafs(store: Store) {
    company(&store).await;
    caf(&store, 1, 3).await;
    caf(&store, 10, 20).await;
    assert_eq!(issue(&store, &[None, None]).await, vec![1, 2]);
    // The group runs past the first CAF into the second.
    assert_eq!(issue(&store, &[None, None, None]).await, vec![3, 10, 11]);
    let cafs = store.list_cafs(RUT).await.expect("cafs");
    assert_eq!(cafs.iter().map(|c| c.next_folio).collect::<Vec<_>>(), vec![4, 12]);
    // The exhausted CAF is no longer offered.
    let lock = store.lock_folios(RUT, 33, today(), &[None]).await.expect("lock");
    assert_eq!(lock.cafs.iter().map(|c| c.desde).collect::<Vec<_>>(), vec![10]);
    lock.release().await;
    let docs = store.list_documents(RUT, &DocFilter { limit: 100, ..DocFilter::default() }).await.expect("list");
    assert_eq!(docs.iter().map(|d| d.folio).collect::<Vec<_>>(), vec![11, 10, 3, 2, 1], "newest first");
    let xml = store.get_document_xml(RUT, 33, 10).await.expect("xml").expect("stored");
    assert_eq!(xml, b"<DTE folio=\"10\"/>");
    assert_eq!(store.get_document(RUT, 33, 4).await.expect("get").map(|d| d.folio), None);
    // One audit entry per document, in one chain that verifies.
    let entries = store.audit_entries().await.expect("audit");
    assert_eq!(entries.iter().filter(|e| e.action == "document.issue").count(), 5);
    assert_eq!(dte_gateway::store::verify_audit(&AUDIT_KEY, &entries), Ok(entries.len()));
}

async fn idempotency_inside_groups(store: Store) {
    company(&store).await;
    caf(&store, 1, 100).await;
    assert_eq!(issue(&store, &[idem("a", "h1"), None]).await, vec![1, 2]);
    let idems = [idem("a", "h1"), idem("a2", "h1"), idem("a", "other")];
    // In one group: the same key and body (a replay of folio 1) and a new key; then another body.
    let lock = store.lock_folios(RUT, 33, today(), &idems[..2]).await.expect("lock");
    assert!(matches!(&lock.idem[0], IdemState::Replay(r) if r["folio"] == 1), "{:?}", lock.idem);
    assert!(matches!(lock.idem[1], IdemState::New));
    lock.release().await;
    let lock = store.lock_folios(RUT, 33, today(), &idems[2..]).await.expect("lock");
    assert!(matches!(lock.idem[0], IdemState::Mismatch));
    lock.release().await;
    // A key claimed by a group that wrote nothing is free again afterwards.
    let lock = store.lock_folios(RUT, 33, today(), &[idem("b", "h")]).await.expect("lock");
    assert!(matches!(lock.idem[0], IdemState::New));
    lock.commit(Vec::new(), Vec::new(), Utc::now()).await.expect("empty commit");
    assert_eq!(issue(&store, &[idem("b", "h")]).await, vec![3]);
    // Dropped without commit (a crash mid-group): nothing stays, the folio is not used.
    let lock = store.lock_folios(RUT, 33, today(), &[idem("c", "h")]).await.expect("lock");
    drop(lock);
    assert_eq!(issue(&store, &[idem("c", "h")]).await, vec![4]);
}

async fn groups_of_one_company_wait_for_each_other(store: Store) {
    company(&store).await;
    caf(&store, 1, 100).await;
    let first = store.lock_folios(RUT, 33, today(), &[None]).await.expect("lock");
    let second = {
        let store = store.clone();
        tokio::spawn(async move {
            let lock = store.lock_folios(RUT, 33, today(), &[None]).await.expect("lock");
            let next = lock.cafs[0].next_folio;
            lock.release().await;
            next
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second group must wait for the first");
    let (r, a) = rows(&first, &[None]);
    first.commit(r, a, Utc::now()).await.expect("commit");
    assert_eq!(second.await.expect("second"), 2, "the second group sees the first one's folio taken");
}

async fn stored_values_are_parsed_strictly(store: Store, db: &Db) {
    company(&store).await;
    caf(&store, 1, 10).await;
    issue(&store, &[None]).await;
    assert_eq!(store.get_company(RUT).await.expect("get").map(|c| c.environment), Some(Environment::Certificacion));
    assert_eq!(store.get_document(RUT, 33, 1).await.expect("get").map(|d| d.state), Some(DocState::Issued));
    let sql = "UPDATE companies SET environment = 'prod'; UPDATE documents SET state = 'aceptado'";
    match db {
        Db::Sqlite(d) => {
            rusqlite::Connection::open(d.path().join("gw.sqlite")).expect("open").execute_batch(sql).expect("update");
        }
        Db::Postgres(url) => {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            c.batch_execute(sql).await.expect("update");
        }
    }
    let err = store.get_company(RUT).await.expect_err("an unknown environment is an error");
    assert!(err.to_string().contains("unknown SII environment"), "{err}");
    let err = store.get_document(RUT, 33, 1).await.expect_err("an unknown state is an error");
    assert!(err.to_string().contains("unknown document state"), "{err}");
}

async fn api_keys_and_revocation(store: Store) {
    let now = Utc::now();
    let k = ApiKeyRecord {
        id: "key_1".into(),
        hash: "h1".into(),
        company: Some(RUT.into()),
        scopes: vec!["issue".into(), "read".into()],
        created_at: now,
        expires_at: None,
        revoked_at: None,
    };
    store
        .create_api_key(
            k,
            NewAudit { scope: "*".into(), action: "key.create", subject: "key_1".into(), data: String::new() },
        )
        .await
        .expect("create");
    let found = store.find_api_key("h1").await.expect("find").expect("found");
    assert_eq!((found.id.as_str(), found.scopes.len()), ("key_1", 2));
    let revoked = store
        .revoke_api_key(
            "key_1",
            now,
            now + chrono::Duration::hours(1),
            NewAudit { scope: "*".into(), action: "key.revoke", subject: "key_1".into(), data: String::new() },
        )
        .await
        .expect("revoke");
    assert!(revoked);
    assert_eq!(store.revocation_list().await.expect("list"), vec!["h1".to_string()]);
    assert!(store.get_api_key("key_1").await.expect("get").expect("key").revoked_at.is_some());
}

async fn uploads_claim_each_document_once(store: Store) {
    company(&store).await;
    caf(&store, 1, 100).await;
    issue(&store, &[None, None, None]).await;
    let now = Utc::now();
    // Only documents issued before this instant count as old enough to go alone.
    let cutoff = now - chrono::Duration::seconds(5);
    let up = store.claim_upload(2, cutoff, now).await.expect("claim").expect("an upload");
    assert_eq!(store.upload_documents(up).await.expect("docs").iter().map(|d| d.1).collect::<Vec<_>>(), vec![1, 2]);
    let rest = store.claim_upload(2, cutoff, now).await.expect("claim");
    // One document is left: under `max` and not old enough, so it waits.
    assert_eq!(rest, None);
    let leased = store
        .lease_upload(&[UploadStatus::New, UploadStatus::Pending], now, chrono::Duration::seconds(30))
        .await
        .expect("lease");
    assert_eq!(leased.map(|u| u.id), Some(up));
    assert_eq!(
        store
            .lease_upload(&[UploadStatus::New, UploadStatus::Pending], now, chrono::Duration::seconds(30))
            .await
            .expect("lease")
            .map(|u| u.id),
        None,
        "leased once"
    );
    // Once old enough, the last document goes alone.
    let alone =
        store.claim_upload(2, now + chrono::Duration::seconds(5), now).await.expect("claim").expect("an upload");
    assert_eq!(store.upload_documents(alone).await.expect("docs").iter().map(|d| d.1).collect::<Vec<_>>(), vec![3]);
}

macro_rules! on_both {
    ($name:ident, $case:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = server::sqlite();
                $case(open(&db).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = server::postgres();
                $case(open(&db).await).await;
            }
        }
    };
}

on_both!(folios, groups_take_consecutive_folios_across_cafs);
on_both!(idempotency, idempotency_inside_groups);
on_both!(locking, groups_of_one_company_wait_for_each_other);
on_both!(api_keys, api_keys_and_revocation);
on_both!(uploads, uploads_claim_each_document_once);

mod strict_values {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let db = server::sqlite();
        stored_values_are_parsed_strictly(open(&db).await, &db).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let db = server::postgres();
        stored_values_are_parsed_strictly(open(&db).await, &db).await;
    }
}
