//! What the web console reads and keeps, written once for both backends: its sign-in sessions
//! (when no Redis holds them), a company's documents counted by state, and its SII uploads.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::sql::{args, Vals};
use super::*;

/// A console session: the SHA-256 of its cookie token, the API key it was opened with and its
/// CSRF token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub key_id: String,
    pub key_hash: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An upload (EnvioDTE / EnvioBOLETA) to the SII and what came of it.
#[derive(Debug, Clone)]
pub struct LastUpload {
    pub id: i64,
    pub state: String,
    pub track_id: Option<String>,
    pub estado: Option<String>,
    pub glosa: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const SESSION_COLS: &str = "id_hash, key_id, key_hash, csrf, created_at, last_seen, expires_at";
const UPLOAD_COLS: &str = "u.id, u.state, u.track_id, u.estado, u.glosa, u.attempts, u.last_error, u.created_at";

fn session(r: &Vals) -> Result<ConsoleSession, StoreError> {
    Ok(ConsoleSession {
        id_hash: r.text(0)?,
        key_id: r.text(1)?,
        key_hash: r.text(2)?,
        csrf: r.text(3)?,
        created_at: r.ts(4)?,
        last_seen: r.ts(5)?,
        expires_at: r.ts(6)?,
    })
}

fn upload(r: &Vals) -> Result<LastUpload, StoreError> {
    Ok(LastUpload {
        id: r.i64(0)?,
        state: r.text(1)?,
        track_id: r.opt(2, Vals::text)?,
        estado: r.opt(3, Vals::text)?,
        glosa: r.opt(4, Vals::text)?,
        attempts: r.i64(5)?,
        last_error: r.opt(6, Vals::text)?,
        created_at: r.ts(7)?,
    })
}

impl Store {
    pub async fn insert_console_session(&self, s: &ConsoleSession) -> Result<(), StoreError> {
        self.exec(
            &format!("INSERT INTO console_sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            args![
                s.id_hash.as_str(),
                s.key_id.as_str(),
                s.key_hash.as_str(),
                s.csrf.as_str(),
                s.created_at,
                s.last_seen,
                s.expires_at
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>, StoreError> {
        self.query_opt(&format!("SELECT {SESSION_COLS} FROM console_sessions WHERE id_hash = $1"), args![id_hash])
            .await?
            .as_ref()
            .map(session)
            .transpose()
    }

    pub async fn touch_console_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.exec("UPDATE console_sessions SET last_seen = $2 WHERE id_hash = $1", args![id_hash, at]).await.map(|_| ())
    }

    pub async fn delete_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM console_sessions WHERE id_hash = $1", args![id_hash]).await.map(|_| ())
    }

    /// Every company: RUT, RznSoc and environment, in RUT order.
    pub async fn company_list(&self) -> Result<Vec<(String, String, Environment)>, StoreError> {
        self.query("SELECT rut, data, environment FROM companies ORDER BY rut", args![])
            .await?
            .iter()
            .map(|r| {
                let c: crate::domain::Company =
                    serde_json::from_str(&r.text(1)?).map_err(|e| StoreError::Db(format!("company data: {e}")))?;
                Ok((r.text(0)?, c.rzn_soc, r.parse(2)?))
            })
            .collect()
    }

    /// The API keys bound to a company, newest first.
    pub async fn company_api_keys(&self, rut: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.query(
            &format!("SELECT {} FROM api_keys WHERE company = $1 ORDER BY created_at DESC", super::ops::KEY_COLS),
            args![rut],
        )
        .await?
        .iter()
        .map(super::ops::key)
        .collect()
    }

    /// A company's documents issued (`FchEmis`) from `since`, counted by state.
    pub async fn document_counts(&self, rut: &str, since: NaiveDate) -> Result<Vec<(String, i64)>, StoreError> {
        self.query(
            "SELECT state, COUNT(*) FROM documents WHERE company = $1 AND fch_emis >= $2 GROUP BY state ORDER BY state",
            args![rut, since],
        )
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.i64(1)?)))
        .collect()
    }

    /// A company's newest upload to the SII.
    pub async fn last_upload(&self, rut: &str) -> Result<Option<LastUpload>, StoreError> {
        self.query_opt(
            &format!("SELECT {UPLOAD_COLS} FROM uploads u WHERE u.company = $1 ORDER BY u.id DESC LIMIT 1"),
            args![rut],
        )
        .await?
        .as_ref()
        .map(upload)
        .transpose()
    }

    /// The upload that carried a document to the SII, if it went yet.
    pub async fn document_upload(&self, rut: &str, tipo: i32, folio: i64) -> Result<Option<LastUpload>, StoreError> {
        self.query_opt(
            &format!(
                "SELECT {UPLOAD_COLS} FROM documents d JOIN uploads u ON u.id = d.upload_id
                 WHERE d.company = $1 AND d.tipo = $2 AND d.folio = $3"
            ),
            args![rut, tipo, folio],
        )
        .await?
        .as_ref()
        .map(upload)
        .transpose()
    }
}
