//! The boleta REST API (NOTES §1): seed and token on the API host, EnvioBOLETA uploads on the
//! envío host (JSON answers), upload and boleta status on the API host. Answers are mapped to the
//! same outcomes as the SOAP services. The SII sometimes answers a status with 200 and an empty or
//! non-JSON body, or 404 while processing: both mean "ask again later".

use crate::otel::Traced;
use std::time::Duration;

use super::client::{DteState, SiiError, Upload, UploadState, USER_AGENT};
use super::soap;
use crate::cert::Certificate;
use crate::domain::Environment;
use crate::domain::Rut;

#[derive(Debug, Clone)]
pub struct BoletaEndpoints {
    /// `https://apicert.sii.cl` (producción `https://api.sii.cl`).
    pub api: String,
    /// `https://pangal.sii.cl` (producción `https://rahue.sii.cl`).
    pub envio: String,
}

impl BoletaEndpoints {
    pub fn for_env(env: Environment) -> BoletaEndpoints {
        match env {
            Environment::Certificacion => {
                BoletaEndpoints { api: "https://apicert.sii.cl".into(), envio: "https://pangal.sii.cl".into() }
            }
            Environment::Produccion => {
                BoletaEndpoints { api: "https://api.sii.cl".into(), envio: "https://rahue.sii.cl".into() }
            }
        }
    }
}

#[derive(Clone)]
pub struct BoletaClient {
    http: reqwest::Client,
    pub endpoints: BoletaEndpoints,
}

fn transport(e: reqwest::Error) -> SiiError {
    SiiError::Transport(e.to_string())
}

impl BoletaClient {
    pub fn new(endpoints: BoletaEndpoints, timeout: Duration) -> Result<BoletaClient, SiiError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(transport)?;
        Ok(BoletaClient { http, endpoints })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/recursos/v1/{path}", self.endpoints.api)
    }

    async fn respuesta(resp: reqwest::Response) -> Result<soap::Respuesta, SiiError> {
        let status = resp.status();
        let body = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(SiiError::Http(status.as_u16()));
        }
        Ok(soap::parse_respuesta(&body)?)
    }

    pub async fn authenticate(&self, cert: &Certificate) -> Result<String, SiiError> {
        let r = Self::respuesta(
            self.http
                .get(self.url("boleta.electronica.semilla"))
                .header("accept", "application/xml")
                .traced()
                .send()
                .await
                .map_err(transport)?,
        )
        .await?;
        let seed = r.body.get("SEMILLA").cloned().filter(|s| r.estado() == "00" && !s.is_empty());
        let seed = seed.ok_or_else(|| SiiError::Refused { estado: r.estado().into(), glosa: r.glosa().into() })?;
        let signed = super::auth::signed_seed(&seed, cert).map_err(|e| SiiError::Sign(e.to_string()))?;
        let r = Self::respuesta(
            self.http
                .post(self.url("boleta.electronica.token"))
                .header("content-type", "application/xml")
                .body(signed)
                .traced()
                .send()
                .await
                .map_err(transport)?,
        )
        .await?;
        match (r.estado(), r.body.get("TOKEN")) {
            ("00", Some(t)) if !t.is_empty() => Ok(t.clone()),
            _ => Err(SiiError::Refused { estado: r.estado().into(), glosa: r.glosa().into() }),
        }
    }

    pub async fn upload(
        &self,
        token: &str,
        sender: Rut,
        company: Rut,
        filename: &str,
        envelope: Vec<u8>,
    ) -> Result<Upload, SiiError> {
        let form = super::client::upload_form(sender, company, filename, envelope, "application/xml")?;
        let resp = self
            .http
            .post(format!("{}/recursos/v1/boleta.electronica.envio", self.endpoints.envio))
            .header("cookie", format!("TOKEN={token}"))
            .header("accept", "application/json")
            .multipart(form)
            .traced()
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        Ok(match status {
            200 => match body
                .get("trackid")
                .map(|t| t.to_string().trim_matches('"').to_string())
                .filter(|t| !t.is_empty() && t != "null")
            {
                Some(t) => Upload::Received(t),
                None => return Err(SiiError::Malformed(format!("envío answer without trackid: {body}"))),
            },
            401 | 403 => Upload::Reauthenticate,
            500..=599 => Upload::Retry(format!("HTTP {status}")),
            _ => Upload::Rejected {
                status: body["estado"].as_str().unwrap_or("?").to_string(),
                detail: vec![body.to_string()],
            },
        })
    }

    pub async fn query_upload(&self, token: &str, company: Rut, track_id: &str) -> Result<UploadState, SiiError> {
        let resp = self
            .http
            .get(self.url(&format!("boleta.electronica.envio/{}-{}-{track_id}", company.number(), company.dv())))
            .header("cookie", format!("TOKEN={token}"))
            .header("accept", "application/json")
            .traced()
            .send()
            .await
            .map_err(transport)?;
        match resp.status().as_u16() {
            401 | 403 => return Ok(UploadState::Reauthenticate),
            404 => return Ok(UploadState::Pending("404".into())),
            s if s >= 500 => return Err(SiiError::Http(s)),
            _ => {}
        }
        let Ok(v) = resp.json::<serde_json::Value>().await else { return Ok(UploadState::Pending("empty".into())) };
        let estado = v["estado"].as_str().unwrap_or("").to_string();
        let glosa = v["glosa"].as_str().unwrap_or("").to_string();
        let sum = |k: &str| {
            v["estadistica"].as_array().map(|a| a.iter().map(|e| e[k].as_u64().unwrap_or(0) as u32).sum()).unwrap_or(0)
        };
        Ok(match estado.as_str() {
            "EPR" | "LOK" | "EOK" | "RPR" => UploadState::Processed {
                informados: sum("informados"),
                aceptados: sum("aceptados"),
                rechazados: sum("rechazados"),
                reparos: sum("reparos"),
                estado,
                glosa,
            },
            "RCT" | "RCH" | "RFR" | "RSC" | "RCO" => UploadState::Rejected { estado, glosa },
            _ => UploadState::Pending(estado),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn query_boleta(
        &self,
        token: &str,
        company: Rut,
        receptor: Rut,
        tipo: u16,
        folio: u64,
        fecha: chrono::NaiveDate,
        monto: i64,
    ) -> Result<DteState, SiiError> {
        let resp = self
            .http
            .get(self.url(&format!(
                "boleta.electronica/{}-{}-{tipo}-{folio}/estado?rut_receptor={}&dv_receptor={}&monto={monto}&fechaEmision={}",
                company.number(),
                company.dv(),
                receptor.number(),
                receptor.dv(),
                fecha.format("%d-%m-%Y")
            )))
            .header("cookie", format!("TOKEN={token}"))
            .header("accept", "application/json")
            .traced().send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        if status >= 400 {
            return Err(SiiError::Http(status));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| SiiError::Malformed(e.to_string()))?;
        Ok(DteState {
            estado: v["codigo"].as_str().unwrap_or("").to_string(),
            glosa: v["descripcion"].as_str().unwrap_or("").to_string(),
        })
    }
}
