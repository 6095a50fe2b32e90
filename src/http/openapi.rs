//! The OpenAPI 3 document, generated from the handlers and types, and a page that lists it.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{batches, cafs, companies, delivery, documents, keys, print, received, sii, tools};

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = api.components.as_mut() {
            c.add_security_scheme(
                "api_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "dte-gateway", description = "Chile's electronic tax documents: issue, sign, store and verify DTE."),
    paths(
        companies::create, companies::get, companies::put_certificate, companies::get_certificate, companies::add_caf, companies::list_cafs, cafs::forecast, cafs::unused, cafs::retire,
        documents::issue, documents::get, documents::xml, documents::list, print::pdf, print::put_logo,
        keys::create, keys::revoke, keys::rotate,
        sii::add_webhook, sii::list_webhooks, sii::deliveries, sii::delete_webhook, sii::rotate_webhook_secret, sii::sii_status,
        tools::quote, tools::verify,
        batches::submit, batches::list, batches::status, batches::items, batches::events, batches::results,
        batches::dead_letters, batches::replay, batches::replay_all,
        received::put_mailbox, received::get_mailbox, received::poll_mailbox, received::take_file, received::list, received::get, received::xml,
        received::pdf, received::responses, received::response_xml, received::decide,
        delivery::import_directory, delivery::put_buyer, delivery::list_buyers, delivery::exchange, delivery::deliver,
        delivery::cedible
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// Every operation as the request metrics label it: (route pattern, method, its success status).
pub fn routes() -> Vec<(String, String, u16)> {
    let api = ApiDoc::openapi();
    let mut out = Vec::new();
    for (path, item) in api.paths.paths.iter() {
        for (method, op) in [("GET", &item.get), ("POST", &item.post), ("PUT", &item.put), ("DELETE", &item.delete)] {
            let Some(op) = op else { continue };
            let ok =
                op.responses.responses.keys().filter_map(|k| k.parse::<u16>().ok()).find(|s| (200..300).contains(s));
            out.push((path.clone(), method.to_string(), ok.unwrap_or(200)));
        }
    }
    out
}

pub async fn spec() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(ApiDoc::openapi().to_pretty_json().unwrap_or_default())
}

/// A plain page listing every operation; the full contract is `/openapi.json`.
pub async fn docs() -> HttpResponse {
    let api = ApiDoc::openapi();
    let mut rows = String::new();
    for (path, item) in api.paths.paths.iter() {
        for (method, op) in [("GET", &item.get), ("POST", &item.post), ("PUT", &item.put), ("DELETE", &item.delete)] {
            if let Some(op) = op {
                let summary = op.summary.clone().or_else(|| op.description.clone()).unwrap_or_default();
                rows.push_str(&format!(
                    "<tr><td><code>{method}</code></td><td><code>{}</code></td><td>{}</td></tr>\n",
                    esc(path),
                    esc(&summary)
                ));
            }
        }
    }
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>dte-gateway API</title></head><body><h1>dte-gateway API</h1>\
         <p>Full contract: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3). Authenticate with <code>Authorization: Bearer KEY</code>.</p>\
         <table border=\"1\" cellpadding=\"4\"><tr><th>method</th><th>path</th><th>what</th></tr>{rows}</table></body></html>"
    ))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
