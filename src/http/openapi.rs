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

/// The documents of `examples/`, one per type, shown as request examples of issuance and quotes.
const EXAMPLES: [(&str, &str); 12] = [
    ("33-factura", include_str!("../../examples/33-factura.json")),
    ("34-factura-exenta", include_str!("../../examples/34-factura-exenta.json")),
    ("39-boleta", include_str!("../../examples/39-boleta.json")),
    ("41-boleta-exenta", include_str!("../../examples/41-boleta-exenta.json")),
    ("43-liquidacion-factura", include_str!("../../examples/43-liquidacion-factura.json")),
    ("46-factura-compra", include_str!("../../examples/46-factura-compra.json")),
    ("52-guia-despacho", include_str!("../../examples/52-guia-despacho.json")),
    ("56-nota-debito", include_str!("../../examples/56-nota-debito.json")),
    ("61-nota-credito", include_str!("../../examples/61-nota-credito.json")),
    ("110-factura-exportacion", include_str!("../../examples/110-factura-exportacion.json")),
    ("111-nota-debito-exportacion", include_str!("../../examples/111-nota-debito-exportacion.json")),
    ("112-nota-credito-exportacion", include_str!("../../examples/112-nota-credito-exportacion.json")),
];

struct Examples;

impl Modify for Examples {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::example::ExampleBuilder;
        use utoipa::openapi::RefOr;
        for path in ["/v1/companies/{rut}/documents", "/v1/tax/quote"] {
            let Some(op) = api.paths.paths.get_mut(path).and_then(|p| p.post.as_mut()) else { continue };
            let Some(RefOr::T(body)) = op.request_body.as_mut() else { continue };
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else { continue };
                for (name, text) in EXAMPLES {
                    let value = serde_json::from_str::<serde_json::Value>(text).ok();
                    let example = ExampleBuilder::new().summary(format!("examples/{name}.json")).value(value).build();
                    content.examples.insert(name.to_string(), RefOr::T(example));
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "dte-gateway", description = "Chile's electronic tax documents: issue, sign, store and verify DTE."),
    paths(
        companies::create, companies::get, companies::put_environment, companies::put_certificate, companies::get_certificate, companies::add_caf, companies::list_cafs, cafs::forecast, cafs::unused, cafs::retire,
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
    modifiers(&Security, &Examples)
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

const SWAGGER_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");
const DOCS_INIT: &[u8] = include_bytes!("../../assets/docs-init.js");

/// The page's own policy: scripts and styles from the gateway only (no inline script), images
/// also as data URIs (Swagger UI's icons), requests to the gateway only.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The interactive API documentation (Swagger UI, served by the gateway) over `/openapi.json`.
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CONTENT_SECURITY_POLICY, DOCS_CSP))
        .body(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>dte-gateway API</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\"></head>\
             <body><div id=\"swagger-ui\"></div><script src=\"/docs/swagger-ui-bundle.js\"></script><script src=\"/docs/init.js\"></script></body></html>",
        )
}

/// The viewer's files, vendored in the repository; cached for a day.
pub async fn docs_asset(name: actix_web::web::Path<String>) -> HttpResponse {
    let (body, ctype) = match name.as_str() {
        "swagger-ui-bundle.js" => (SWAGGER_JS, "text/javascript; charset=utf-8"),
        "swagger-ui.css" => (SWAGGER_CSS, "text/css; charset=utf-8"),
        "init.js" => (DOCS_INIT, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(ctype)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "public, max-age=86400"))
        .body(body)
}
