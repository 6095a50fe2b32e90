//! The boleta REST API of the simulator (NOTES §1): seed, token, envío (multipart → JSON with the
//! trackid), estado of an envío and of one boleta — the same checks as DTEUpload behind them.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use super::{accepted, cookie_token, receive, soap, token, upload_now, Sim, Verdict};

const BASE: &str = "/recursos/v1";

fn xml(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("application/xml").body(body)
}

async fn semilla(sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Some(f) = sim.faults().await {
        return f;
    }
    let seed =
        format!("{:012}", sim.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 7919 % 1_000_000_000_000);
    if let Ok(mut s) = sim.seeds.lock() {
        s.insert(seed.clone(), std::time::Instant::now());
    }
    sim.count(|c| c.seeds += 1);
    xml(soap::respuesta(&[("ESTADO", "00")], &[("SEMILLA", &seed)]))
}

async fn token_rest(body: web::Bytes, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Some(f) = sim.faults().await {
        return f;
    }
    xml(token(&sim, &String::from_utf8_lossy(&body)))
}

async fn envio(req: HttpRequest, form: actix_multipart::Multipart, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Some(f) = sim.faults().await {
        return f;
    }
    let (r, v) = receive(&req, form, &sim, true).await;
    match v {
        Verdict::Track(t) => HttpResponse::Ok().json(serde_json::json!({
            "rut_emisor": r.company, "rut_envia": r.sender, "trackid": t.parse::<u64>().unwrap_or(0),
            "fecha_recepcion": chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(), "estado": "REC", "file": r.filename
        })),
        Verdict::Status("5", _) => HttpResponse::Unauthorized().json(serde_json::json!({"estado": "TOKEN", "mensaje": "token no valido"})),
        Verdict::Status("9", _) => HttpResponse::ServiceUnavailable().json(serde_json::json!({"estado": "9", "mensaje": "sistema bloqueado"})),
        Verdict::Status(code, detail) => HttpResponse::BadRequest().json(serde_json::json!({"estado": code, "detalle": detail})),
    }
}

/// The 401 to answer when the request's token is not valid.
fn token_refusal(req: &HttpRequest, sim: &Sim) -> Option<HttpResponse> {
    match cookie_token(req).map(|t| sim.token_ok(&t)) {
        Some(Ok(())) => None,
        _ => Some(
            HttpResponse::Unauthorized().json(serde_json::json!({"estado": "TOKEN", "mensaje": "token no valido"})),
        ),
    }
}

/// `GET …/boleta.electronica.envio/{rut}-{dv}-{trackid}`
async fn estado_envio(req: HttpRequest, path: web::Path<String>, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Some(f) = sim.faults().await {
        return f;
    }
    if let Some(r) = token_refusal(&req, &sim) {
        return r;
    }
    let parts: Vec<&str> = path.rsplitn(2, '-').collect();
    let (track, company) = match parts.as_slice() {
        [t, c] => (t.to_string(), c.to_string()),
        _ => return HttpResponse::NotFound().finish(),
    };
    match upload_now(&sim, &track, &company) {
        None => HttpResponse::NotFound().json(serde_json::json!({"estado": "-11", "mensaje": "trackid no existe"})),
        Some((estado, glosa, counts)) => {
            let estadistica: Vec<serde_json::Value> = counts
                .map(|c| vec![serde_json::json!({"tipo": 39, "informados": c[0], "aceptados": c[1], "rechazados": c[2], "reparos": c[3]})])
                .unwrap_or_default();
            HttpResponse::Ok().json(serde_json::json!({"rut_emisor": company, "trackid": track, "estado": estado, "glosa": glosa, "estadistica": estadistica, "detalle_rep_rech": []}))
        }
    }
}

/// `GET …/boleta.electronica/{rut}-{dv}-{tipo}-{folio}/estado`
async fn estado_boleta(req: HttpRequest, path: web::Path<String>, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    if let Some(f) = sim.faults().await {
        return f;
    }
    if let Some(r) = token_refusal(&req, &sim) {
        return r;
    }
    let parts: Vec<&str> = path.split('-').collect();
    let [rut, dv, tipo, folio] = parts.as_slice() else { return HttpResponse::NotFound().finish() };
    if accepted(&sim, &format!("{rut}-{dv}/{tipo}/{folio}")) {
        HttpResponse::Ok()
            .json(serde_json::json!({"codigo": "DOK", "descripcion": "Documento recibido por el SII, datos coinciden"}))
    } else {
        HttpResponse::Ok().json(serde_json::json!({"codigo": "FAU", "descripcion": "Documento no recibido por el SII"}))
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(&format!("{BASE}/boleta.electronica.semilla"), web::get().to(semilla))
        .route(&format!("{BASE}/boleta.electronica.token"), web::post().to(token_rest))
        .route(&format!("{BASE}/boleta.electronica.envio"), web::post().to(envio))
        .route(&format!("{BASE}/boleta.electronica.envio/{{id}}"), web::get().to(estado_envio))
        .route(&format!("{BASE}/boleta.electronica/{{id}}/estado"), web::get().to(estado_boleta));
}
