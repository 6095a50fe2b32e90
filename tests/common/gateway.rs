//! A company set up through the real API: servers, an admin key from the CLI, the demo company,
//! its certificate, a CAF made today and a company key.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::repo;
use super::server::{cli_key, Db, Server};

pub const RUT: &str = "76192083-9";

pub struct Gateway {
    pub db: Db,
    pub servers: Vec<Server>,
    pub admin: String,
    /// issue + read on the company.
    pub key: String,
    pub http: reqwest::Client,
}

pub fn caf_xml(tipo: u16, desde: u64, hasta: u64, rut: &str) -> String {
    let key = std::fs::read(repo("certs/test-authority.key")).expect("authority key");
    let fa = chrono::Local::now().date_naive();
    dte_gateway::demo::make_caf(&key, rut.parse().expect("rut"), "EMPRESA DE PRUEBA SPA", tipo, desde, hasta, fa)
        .expect("caf")
}

pub fn factura(item: &str, price: u64) -> Value {
    json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 33},
            "Receptor": {"RUTRecep": "76555835-2", "RznSocRecep": "Ñandú & Cía. Limitada", "GiroRecep": "Comercio", "DirRecep": "Los Aromos 45", "CmnaRecep": "Ñuñoa"}
        },
        "Detalle": [{"NmbItem": item, "QtyItem": 1, "PrcItem": price}]
    })
}

impl Gateway {
    pub async fn start(db: Db, servers: usize, extra: &[(&str, &str)], caf_hasta: u64) -> Gateway {
        let admin = cli_key(&db, &["--admin"]);
        let servers: Vec<Server> = (0..servers).map(|_| Server::start(&db, extra)).collect();
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client");
        let mut g = Gateway { db, servers, admin, key: String::new(), http };
        let mut company: Value =
            serde_json::from_slice(&std::fs::read(repo("examples/company.json")).expect("company")).expect("json");
        company["environment"] = json!("certificacion");
        let (s, b) = g.send("POST", "/v1/companies", &g.admin.clone(), Some(company)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let p12 = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(repo("certs/test-company.p12")).expect("p12"));
        let (s, b) = g
            .send(
                "PUT",
                &format!("/v1/companies/{RUT}/certificate"),
                &g.admin.clone(),
                Some(json!({"pkcs12": p12, "password": "test1234"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = g.add_caf(RUT, 33, 1, caf_hasta).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = g
            .send("POST", "/v1/keys", &g.admin.clone(), Some(json!({"company": RUT, "scopes": ["issue", "read"]})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        g.key = b["key"].as_str().expect("key").to_string();
        g
    }

    /// Another company with the test certificate, a CAF made today and an issue+read key.
    pub async fn add_company(&self, rut: &str, caf_hasta: u64) -> String {
        let mut company: Value =
            serde_json::from_slice(&std::fs::read(repo("examples/company.json")).expect("company")).expect("json");
        company["RUTEmisor"] = json!(rut);
        let (s, b) = self.send("POST", "/v1/companies", &self.admin, Some(company)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let p12 = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(repo("certs/test-company.p12")).expect("p12"));
        let (s, b) = self
            .send(
                "PUT",
                &format!("/v1/companies/{rut}/certificate"),
                &self.admin,
                Some(json!({"pkcs12": p12, "password": "test1234"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = self.add_caf(rut, 33, 1, caf_hasta).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = self
            .send("POST", "/v1/keys", &self.admin, Some(json!({"company": rut, "scopes": ["issue", "read", "admin"]})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["key"].as_str().expect("key").to_string()
    }

    /// Uploads a CAF made today for `rut` (type `tipo`, folios `desde`-`hasta`) with the admin key.
    pub async fn add_caf(&self, rut: &str, tipo: u16, desde: u64, hasta: u64) -> (StatusCode, Value) {
        let xml = caf_xml(tipo, desde, hasta, rut).into_bytes();
        self.raw("POST", &format!("/v1/companies/{rut}/cafs"), &self.admin, xml, "application/xml").await
    }

    /// Documents of `rut` per state.
    pub async fn states(&self, rut: &str, key: &str) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        let mut before: Option<i64> = None;
        loop {
            let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
            let (_, b) = self.send("GET", &format!("/v1/companies/{rut}/documents?limit=500{q}"), key, None).await;
            for d in b["items"].as_array().cloned().unwrap_or_default() {
                *out.entry(d["state"].as_str().unwrap_or("").to_string()).or_default() += 1;
            }
            match b["next"].as_i64() {
                Some(n) => before = Some(n),
                None => return out,
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.servers[0].url(path)
    }

    pub async fn send(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let bytes = body.map(|b| serde_json::to_vec(&b).expect("json")).unwrap_or_default();
        self.raw(method, path, key, bytes, "application/json").await
    }

    pub async fn raw(&self, method: &str, path: &str, key: &str, body: Vec<u8>, ctype: &str) -> (StatusCode, Value) {
        self.raw_on(0, method, path, key, body, ctype, None).await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn raw_on(
        &self,
        server: usize,
        method: &str,
        path: &str,
        key: &str,
        body: Vec<u8>,
        ctype: &str,
        idem: Option<&str>,
    ) -> (StatusCode, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.http.request(m, self.servers[server].url(path)).header("content-type", ctype);
        if !key.is_empty() {
            r = r.bearer_auth(key);
        }
        if let Some(i) = idem {
            r = r.header("idempotency-key", i);
        }
        let resp = r.body(body).send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn issue(&self, server: usize, doc: &Value, idem: Option<&str>) -> (StatusCode, Value) {
        self.raw_on(
            server,
            "POST",
            &format!("/v1/companies/{RUT}/documents"),
            &self.key,
            serde_json::to_vec(doc).expect("json"),
            "application/json",
            idem,
        )
        .await
    }

    pub async fn cafs(&self) -> Value {
        self.send("GET", &format!("/v1/companies/{RUT}/cafs"), &self.key, None).await.1
    }

    pub async fn all_documents(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut before: Option<i64> = None;
        loop {
            let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
            let (s, b) =
                self.send("GET", &format!("/v1/companies/{RUT}/documents?limit=500{q}"), &self.key, None).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            out.extend(b["items"].as_array().cloned().unwrap_or_default());
            match b["next"].as_i64() {
                Some(n) => before = Some(n),
                None => return out,
            }
        }
    }
}
