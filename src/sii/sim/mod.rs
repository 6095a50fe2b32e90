//! An offline SII for tests and integrators: the real wire formats (Axis SOAP, RECEPCIONDTE),
//! seeds, tokens only for seeds signed with a valid certificate, uploads checked for token,
//! schema, SetDTE signature, every DTE signature, TED and CAF; QueryEstUp moving from REC to a
//! final state after a delay; QueryEstDte; fault injection; counters at `GET /sim/counters`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod boleta;
pub mod rcv;
pub mod supplier;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use serde::Serialize;

use super::soap;
use crate::caf::CafTrust;
use crate::verify::{self, Status};
use crate::xml::libxml as lx;
use crate::xml::writer::escape_text;

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Added to every answer.
    pub latency: Duration,
    /// Share of requests answered HTTP 500.
    pub error_rate: f64,
    /// Share of requests that hang for `hang` (longer than any sane client timeout).
    pub timeout_rate: f64,
    pub hang: Duration,
    /// Share of answers that are not XML.
    pub malformed_rate: f64,
    pub token_ttl: Duration,
    /// Every upload answered STATUS 9 ("SII blocked").
    pub blocked: bool,
    /// Time from upload to the final state.
    pub processing: Duration,
    /// CAF signers to trust besides the SII (a test authority).
    pub trust: CafTrust,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::ZERO,
            error_rate: 0.0,
            timeout_rate: 0.0,
            hang: Duration::from_secs(120),
            malformed_rate: 0.0,
            token_ttl: Duration::from_secs(3600),
            blocked: false,
            processing: Duration::from_secs(2),
            trust: CafTrust::sii_only(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub seeds: u64,
    pub tokens: u64,
    pub token_refusals: u64,
    pub uploads: u64,
    pub uploads_rejected: u64,
    pub faults: u64,
    /// `RUT/TIPO/FOLIO` → how many accepted envelopes carried it.
    pub accepted: HashMap<String, u32>,
    /// The W3C `traceparent` of every upload that carried one, in order.
    pub upload_traceparents: Vec<String>,
    /// RCV web service calls by operation.
    pub rcv_calls: HashMap<String, u64>,
    /// EnvioBOLETA envelopes received by DTEUpload (what the boleta certification set counts)…
    pub boletas_by_dteupload: u64,
    /// …and by the boleta REST API.
    pub boletas_by_rest: u64,
}

#[derive(Debug, Clone)]
struct UploadRec {
    company: String,
    at: Instant,
    estado: String,
    glosa: String,
    counts: [u32; 4],
}

pub(crate) struct Sim {
    pub(crate) cfg: SimConfig,
    pub(crate) seeds: Mutex<HashMap<String, Instant>>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    uploads: Mutex<HashMap<String, UploadRec>>,
    pub(crate) counters: Mutex<Counters>,
    pub(crate) next: AtomicU64,
    rng: Mutex<u64>,
    pub(crate) rcv: Mutex<rcv::RcvState>,
}

impl Sim {
    fn roll(&self) -> f64 {
        let Ok(mut s) = self.rng.lock() else { return 1.0 };
        // xorshift64*: enough randomness to spread faults.
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut Counters)) {
        if let Ok(mut c) = self.counters.lock() {
            f(&mut c);
        }
    }

    /// Latency and injected faults; `Some` is the faulty answer to give instead.
    pub(crate) async fn faults(&self) -> Option<HttpResponse> {
        if !self.cfg.latency.is_zero() {
            actix_web::rt::time::sleep(self.cfg.latency).await;
        }
        let r = self.roll();
        if r < self.cfg.error_rate {
            self.count(|c| c.faults += 1);
            return Some(HttpResponse::InternalServerError().body("Error 500"));
        }
        if r < self.cfg.error_rate + self.cfg.timeout_rate {
            self.count(|c| c.faults += 1);
            actix_web::rt::time::sleep(self.cfg.hang).await;
            return Some(HttpResponse::GatewayTimeout().finish());
        }
        if r < self.cfg.error_rate + self.cfg.timeout_rate + self.cfg.malformed_rate {
            self.count(|c| c.faults += 1);
            return Some(HttpResponse::Ok().content_type("text/html").body("<html><body>Servicio no disponible"));
        }
        None
    }

    /// The RUT of the certificate holder a valid token was given to.
    pub(crate) fn token_holder(&self, token: &str) -> Result<String, &'static str> {
        let tokens = self.tokens.lock().map_err(|_| "003")?;
        match tokens.get(token) {
            Some((rut, exp)) if *exp > Instant::now() => Ok(rut.clone()),
            _ => Err("003"),
        }
    }

    pub(crate) fn token_ok(&self, token: &str) -> Result<(), &'static str> {
        let tokens = self.tokens.lock().map_err(|_| "003")?;
        match tokens.get(token) {
            None => Err("003"),
            Some((_, exp)) if *exp <= Instant::now() => Err("002"),
            Some(_) => Ok(()),
        }
    }
}

/// The SII's clock: local time to the second.
pub(crate) fn now() -> chrono::NaiveDateTime {
    let n = chrono::Local::now().naive_local();
    chrono::Timelike::with_nanosecond(&n, 0).unwrap_or(n)
}

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/xml; charset=utf-8").body(body)
}

pub(crate) fn cookie_token(req: &HttpRequest) -> Option<String> {
    let c = req.headers().get("cookie")?.to_str().ok()?;
    c.split(';').find_map(|kv| kv.trim().strip_prefix("TOKEN=").map(String::from))
}

fn ns(req: &HttpRequest) -> String {
    format!("https://{}{}", req.connection_info().host(), req.path())
}

async fn soap_service(req: HttpRequest, body: web::Bytes, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Some(f) = sim.faults().await {
        return f;
    }
    let ns = ns(&req);
    let (op, params) = match soap::parse_request(&body) {
        Ok(x) => x,
        Err(e) => {
            return HttpResponse::InternalServerError().content_type("text/xml").body(soap::fault(&e.to_string()))
        }
    };
    let answer = match (req.path(), op.as_str()) {
        (p, "getSeed") if p.ends_with("/CrSeed.jws") => {
            let seed = format!("{:012}", sim.next.fetch_add(1, Ordering::Relaxed) * 7919 % 1_000_000_000_000);
            if let Ok(mut s) = sim.seeds.lock() {
                s.insert(seed.clone(), Instant::now());
            }
            sim.count(|c| c.seeds += 1);
            soap::respuesta(&[("ESTADO", "00")], &[("SEMILLA", &seed)])
        }
        (p, "getToken") if p.ends_with("/GetTokenFromSeed.jws") => {
            token(&sim, params.get("pszXml").map(String::as_str).unwrap_or(""))
        }
        (p, "getEstUp") if p.ends_with("/QueryEstUp.jws") => est_up(&sim, &params),
        (p, "getEstDte") if p.ends_with("/QueryEstDte.jws") => est_dte(&sim, &params),
        _ => {
            return HttpResponse::InternalServerError()
                .content_type("text/xml")
                .body(soap::fault(&format!("no operation {op} at {}", req.path())))
        }
    };
    xml(soap::response(&ns, &op, &answer))
}

pub(crate) fn token(sim: &Sim, psz: &str) -> String {
    let refuse = |estado: &str, glosa: &str| {
        sim.count(|c| c.token_refusals += 1);
        soap::respuesta(&[("ESTADO", estado), ("GLOSA", glosa)], &[])
    };
    let Ok(doc) = crate::xml::input::parse_text(psz) else { return refuse("-07", "Documento no es XML valido") };
    let Some(root) = doc.get_root_element() else { return refuse("-07", "Documento vacio") };
    let seed = lx::path(&root, &["item", "Semilla"]).map(|n| n.get_content().trim().to_string()).unwrap_or_default();
    let fresh = sim
        .seeds
        .lock()
        .ok()
        .and_then(|mut s| s.remove(&seed))
        .is_some_and(|at| at.elapsed() < Duration::from_secs(120));
    if !fresh {
        return refuse("-04", "Semilla no existe o expiro");
    }
    let Some(sig) = lx::child(&root, "Signature") else { return refuse("-07", "Documento sin firma") };
    let report = crate::xml::dsig::verify(&doc, &sig);
    if !report.ok() {
        return refuse("-07", "Firma del documento no valida");
    }
    // The certificate must be the signing key's and valid now.
    let cert = lx::path(&sig, &["KeyInfo", "X509Data", "X509Certificate"])
        .and_then(|c| crate::crypto::b64(&c.get_content()).ok())
        .and_then(|der| openssl::x509::X509::from_der(&der).ok());
    let Some(cert) = cert else { return refuse("-07", "Sin certificado") };
    let now = openssl::asn1::Asn1Time::days_from_now(0).ok();
    let valid = now.as_ref().is_some_and(|n| cert.not_after() >= n && cert.not_before() <= n);
    if !valid || !report.warnings.is_empty() {
        return refuse("-09", "Certificado no vigente o no corresponde a la firma");
    }
    let rut = crate::cert::certificate_rut(&cert).map(|r| r.to_string()).unwrap_or_default();
    let n = sim.next.fetch_add(1, Ordering::Relaxed);
    let token = format!("{:013X}", (n.wrapping_mul(0x9E3779B97F4A7C15)) >> 12);
    if let Ok(mut t) = sim.tokens.lock() {
        t.insert(token.clone(), (rut, Instant::now() + sim.cfg.token_ttl));
    }
    sim.count(|c| c.tokens += 1);
    soap::respuesta(&[("ESTADO", "00"), ("GLOSA", "Token Creado")], &[("TOKEN", &token)])
}

/// Where an upload stands now: (estado, glosa, counts when final and processed).
pub(crate) fn upload_now(sim: &Sim, track: &str, company: &str) -> Option<(String, String, Option<[u32; 4]>)> {
    let rec = sim.uploads.lock().ok().and_then(|u| u.get(track).cloned())?;
    if rec.company != company {
        return None;
    }
    let elapsed = rec.at.elapsed();
    Some(if elapsed < sim.cfg.processing / 2 {
        ("REC".into(), "En proceso".into(), None)
    } else if elapsed < sim.cfg.processing {
        ("SOK".into(), "En proceso".into(), None)
    } else {
        let counts = matches!(rec.estado.as_str(), "EPR" | "RPR" | "RLV").then_some(rec.counts);
        (rec.estado.clone(), rec.glosa.clone(), counts)
    })
}

pub(crate) fn accepted(sim: &Sim, key: &str) -> bool {
    sim.counters.lock().ok().and_then(|c| c.accepted.get(key).copied()).unwrap_or(0) > 0
}

fn est_up(sim: &Sim, p: &HashMap<String, String>) -> String {
    let token = p.get("Token").map(String::as_str).unwrap_or("");
    if let Err(code) = sim.token_ok(token) {
        return soap::respuesta(&[("ESTADO", code), ("GLOSA", "Token Inactivo")], &[]);
    }
    let track = p.get("TrackId").map(|t| t.trim().to_string()).unwrap_or_default();
    let company = format!(
        "{}-{}",
        p.get("RutCompania").map(|s| s.trim()).unwrap_or(""),
        p.get("DvCompania").map(|s| s.trim()).unwrap_or("")
    );
    let rec = sim.uploads.lock().ok().and_then(|u| u.get(&track).cloned());
    let Some(rec) = rec.filter(|r| r.company == company) else {
        return soap::respuesta(
            &[("TRACKID", &track), ("ESTADO", "-11"), ("GLOSA", "TrackId no existe para la empresa")],
            &[],
        );
    };
    let elapsed = rec.at.elapsed();
    let estado = if elapsed < sim.cfg.processing / 2 {
        "REC"
    } else if elapsed < sim.cfg.processing {
        "SOK"
    } else {
        rec.estado.as_str()
    };
    let mut body: Vec<(&str, String)> = Vec::new();
    if estado == rec.estado && matches!(estado, "EPR" | "RPR" | "RLV") {
        for (k, v) in ["INFORMADOS", "ACEPTADOS", "RECHAZADOS", "REPAROS"].iter().zip(rec.counts) {
            body.push((k, v.to_string()));
        }
    }
    let body: Vec<(&str, &str)> = body.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let glosa = if estado == rec.estado { rec.glosa.as_str() } else { "En proceso" };
    soap::respuesta(&[("TRACKID", &track), ("ESTADO", estado), ("GLOSA", glosa)], &body)
}

fn est_dte(sim: &Sim, p: &HashMap<String, String>) -> String {
    let token = p.get("Token").map(String::as_str).unwrap_or("");
    if let Err(code) = sim.token_ok(token) {
        return soap::respuesta(&[("ESTADO", code), ("GLOSA", "Token Inactivo")], &[]);
    }
    let get = |k: &str| p.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let key = format!("{}-{}/{}/{}", get("RutCompania"), get("DvCompania"), get("TipoDte"), get("FolioDte"));
    let accepted = sim.counters.lock().ok().and_then(|c| c.accepted.get(&key).copied()).unwrap_or(0);
    if accepted > 0 {
        soap::respuesta(
            &[("ESTADO", "DOK"), ("GLOSA", "Documento Recibido por el SII. Datos Coinciden con los Registrados")],
            &[],
        )
    } else {
        soap::respuesta(&[("ESTADO", "FAU"), ("GLOSA", "Documento No Recibido por el SII")], &[])
    }
}

fn recepcion(
    sender: &str,
    company: &str,
    file: &str,
    status: &str,
    track: Option<&str>,
    detail: &[String],
) -> HttpResponse {
    let mut s = format!(
        "<?xml version=\"1.0\" ?>\n<RECEPCIONDTE>\n<RUTSENDER>{}</RUTSENDER>\n<RUTCOMPANY>{}</RUTCOMPANY>\n<FILE>{}</FILE>\n<TIMESTAMP>{}</TIMESTAMP>\n<STATUS>{status}</STATUS>\n",
        escape_text(sender),
        escape_text(company),
        escape_text(file),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
    );
    if let Some(t) = track {
        s.push_str(&format!("<TRACKID>{t}</TRACKID>\n"));
    }
    if !detail.is_empty() {
        s.push_str("<DETAIL>");
        for d in detail {
            s.push_str(&format!("<ERROR>{}</ERROR>", escape_text(d)));
        }
        s.push_str("</DETAIL>\n");
    }
    s.push_str("</RECEPCIONDTE>\n");
    HttpResponse::Ok().content_type("text/xml").body(s)
}

/// Who sent what, as the multipart said.
pub(crate) struct Received {
    pub sender: String,
    pub company: String,
    pub filename: String,
}

/// An upload's fate: a STATUS code (with details) or a TrackID.
pub(crate) enum Verdict {
    Status(&'static str, Vec<String>),
    Track(String),
}

/// The checks every upload goes through, DTEUpload and the boleta REST envío alike.
pub(crate) async fn receive(
    req: &HttpRequest,
    mut form: actix_multipart::Multipart,
    sim: &Arc<Sim>,
    rest: bool,
) -> (Received, Verdict) {
    let mut fields: HashMap<String, Vec<u8>> = HashMap::new();
    let mut filename = String::new();
    while let Some(Ok(mut field)) = form.next().await {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(f) = field.content_disposition().and_then(|c| c.get_filename()) {
            filename = f.to_string();
        }
        let mut data = Vec::new();
        while let Some(Ok(chunk)) = field.next().await {
            if data.len() + chunk.len() > 64 << 20 {
                return (
                    Received { sender: String::new(), company: String::new(), filename },
                    Verdict::Status("2", vec!["archivo demasiado grande".into()]),
                );
            }
            data.extend_from_slice(&chunk);
        }
        fields.insert(name, data);
    }
    let text = |k: &str| fields.get(k).map(|v| String::from_utf8_lossy(v).trim().to_string()).unwrap_or_default();
    let (sender, company) = (
        format!("{}-{}", text("rutSender"), text("dvSender")),
        format!("{}-{}", text("rutCompany"), text("dvCompany")),
    );
    sim.count(|c| c.uploads += 1);
    if sim.cfg.blocked {
        return (Received { sender, company, filename }, Verdict::Status("9", vec![]));
    }
    if cookie_token(req).map(|t| sim.token_ok(&t)).is_none_or(|r| r.is_err()) {
        sim.count(|c| c.uploads_rejected += 1);
        return (Received { sender, company, filename }, Verdict::Status("5", vec![]));
    }
    let Some(file) = fields.get("archivo").filter(|f| !f.is_empty()) else {
        sim.count(|c| c.uploads_rejected += 1);
        return (Received { sender, company, filename }, Verdict::Status("3", ["archivo vacio".into()].to_vec()));
    };
    let file = file.clone();
    if file.windows(12).any(|w| w == b"<EnvioBOLETA") {
        sim.count(|c| if rest { c.boletas_by_rest += 1 } else { c.boletas_by_dteupload += 1 });
    }
    let trust = sim.cfg.trust.clone();
    let checked = web::block(move || {
        let report = verify::verify(&file, &trust);
        let caratula =
            crate::xml::input::decode(&file).ok().and_then(|crate::xml::input::Decoded { text: t, .. }| {
                let d = crate::xml::input::parse_text(&t).ok()?;
                let root = d.get_root_element()?;
                let emisor = lx::path(&root, &["SetDTE", "Caratula", "RutEmisor"])
                    .map(|n| n.get_content().trim().to_string())?;
                let dtes: Vec<(String, String, String)> = {
                    let mut v = Vec::new();
                    lx::descendants(&root, "IdDoc", &mut v);
                    v.iter()
                        .filter_map(|id| {
                            let enc = id.get_parent()?;
                            let rut = lx::path(&enc, &["Emisor", "RUTEmisor"])?.get_content().trim().to_string();
                            Some((
                                rut,
                                lx::child_text(id, "TipoDTE")?.trim().to_string(),
                                lx::child_text(id, "Folio")?.trim().to_string(),
                            ))
                        })
                        .collect()
                };
                Some((emisor, dtes))
            });
        (report, caratula)
    })
    .await;
    let Ok((report, caratula)) = checked else {
        return (Received { sender, company, filename }, Verdict::Status("9", vec!["error interno".into()]));
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            sim.count(|c| c.uploads_rejected += 1);
            return (Received { sender, company, filename }, Verdict::Status("7", [e.to_string()].to_vec()));
        }
    };
    let failed = |prefix: &str| {
        report
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail && c.check.starts_with(prefix))
            .map(|c| format!("{}: {}", c.check, c.detail))
            .collect::<Vec<_>>()
    };
    let schema = failed("schema");
    if !schema.is_empty() {
        sim.count(|c| c.uploads_rejected += 1);
        return (Received { sender, company, filename }, Verdict::Status("7", schema));
    }
    let Some((emisor, dtes)) = caratula else {
        return (Received { sender, company, filename }, Verdict::Status("7", ["sin Caratula".into()].to_vec()));
    };
    if emisor != company {
        sim.count(|c| c.uploads_rejected += 1);
        let detail = vec![format!("RutEmisor {emisor} no corresponde a {company}")];
        return (Received { sender, company, filename }, Verdict::Status("6", detail));
    }
    let track = format!("{}", 1_000_000 + sim.next.fetch_add(1, Ordering::Relaxed));
    let (estado, glosa, counts) = if !failed("signature SetDTE").is_empty() {
        ("RFR".to_string(), "Rechazado por Error en Firma".to_string(), [0; 4])
    } else if !failed("caratula").is_empty() {
        ("RCT".to_string(), "Rechazado por Error en Caratula".to_string(), [0; 4])
    } else {
        // A DTE is rejected when any check about it failed.
        let bad: std::collections::HashSet<String> = report
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .filter_map(|c| {
                c.check.split_whitespace().find(|w| w.starts_with('F') && w.contains('T')).map(String::from)
            })
            .collect();
        let mut ok = 0;
        for (rut, tipo, folio) in &dtes {
            if !bad.contains(&format!("F{folio}T{tipo}")) {
                ok += 1;
                let key = format!("{rut}/{tipo}/{folio}");
                sim.count(|c| *c.accepted.entry(key).or_default() += 1);
                if let Ok(f) = folio.parse() {
                    rcv::received(sim, rut, tipo.parse().unwrap_or(0), f, now());
                }
            }
        }
        let n = dtes.len() as u32;
        ("EPR".to_string(), "Envio Procesado".to_string(), [n, ok, n - ok, 0])
    };
    if let Ok(mut u) = sim.uploads.lock() {
        u.insert(track.clone(), UploadRec { company: company.clone(), at: Instant::now(), estado, glosa, counts });
    }
    (Received { sender, company, filename }, Verdict::Track(track))
}

async fn upload(req: HttpRequest, form: actix_multipart::Multipart, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Some(f) = sim.faults().await {
        return f;
    }
    if let Some(tp) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
        if let Ok(mut c) = sim.counters.lock() {
            c.upload_traceparents.push(tp.to_string());
        }
    }
    let (r, v) = receive(&req, form, &sim, false).await;
    match v {
        Verdict::Status(code, detail) => recepcion(&r.sender, &r.company, &r.filename, code, None, &detail),
        Verdict::Track(t) => recepcion(&r.sender, &r.company, &r.filename, "0", Some(&t), &[]),
    }
}

async fn counters(sim: web::Data<Arc<Sim>>) -> HttpResponse {
    let c = sim.counters.lock().map(|c| c.clone()).unwrap_or_default();
    HttpResponse::Ok().json(c)
}

/// Forced token expiry: every token issued so far stops working.
async fn expire_tokens(sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Ok(mut t) = sim.tokens.lock() {
        let now = Instant::now();
        for (_, exp) in t.values_mut() {
            *exp = now;
        }
    }
    HttpResponse::NoContent().finish()
}

/// Runs the simulator until it is stopped; `on_bound` gets the bound address.
pub async fn serve(cfg: SimConfig, bind: &str, on_bound: impl FnOnce(std::net::SocketAddr)) -> std::io::Result<()> {
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
            | 1;
    let sim = web::Data::new(Arc::new(Sim {
        cfg,
        seeds: Mutex::new(HashMap::new()),
        tokens: Mutex::new(HashMap::new()),
        uploads: Mutex::new(HashMap::new()),
        counters: Mutex::new(Counters::default()),
        next: AtomicU64::new(1),
        rng: Mutex::new(seed),
        rcv: Mutex::new(rcv::RcvState::default()),
    }));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(sim.clone())
            .app_data(web::PayloadConfig::new(64 << 20))
            .route("/DTEWS/{service}", web::post().to(soap_service))
            .route("/cgi_dte/UPL/DTEUpload", web::post().to(upload))
            .configure(boleta::routes)
            .configure(rcv::routes)
            .route("/sim/supplier-mail", web::post().to(supplier::mail))
            .route("/sim/counters", web::get().to(counters))
            .route("/sim/expire-tokens", web::post().to(expire_tokens))
    })
    .bind(bind)?;
    if let Some(a) = server.addrs().first() {
        on_bound(*a);
    }
    server.run().await
}
