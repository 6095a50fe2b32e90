//! Validation against the SII's official XSDs with libxml2. The schemas ship inside the binary and
//! are unpacked once into a content-addressed folder, so a binary validates wherever it runs; each
//! thread compiles a schema once (7-13 ms) and reuses its context for every document.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libxml::schemas::{SchemaParserContext, SchemaValidationContext};
use libxml::tree::Document;

macro_rules! schema_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../schemas/", $name)) as &[u8])),*]
    };
}

const FILES: &[(&str, &[u8])] = schema_files!(
    "DTE_v10.xsd",
    "EnvioDTE_v10.xsd",
    "EnvioBOLETA_v11.xsd",
    "SiiTypes_v10.xsd",
    "xmldsignature_v10.xsd",
    "RespuestaEnvioDTE_v10.xsd",
    "EnvioRecibos_v10.xsd",
    "Recibos_v10.xsd",
);
const BOLETA_WRAPPER: &[u8] = include_bytes!("BoletaDTE.xsd");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schema {
    /// A stand-alone DTE (DTE_v10.xsd).
    Dte,
    /// A stand-alone boleta DTE (BOLETADefType of EnvioBOLETA_v11.xsd).
    BoletaDte,
    EnvioDte,
    EnvioBoleta,
    /// A receiver's answer: RecepcionEnvio or ResultadoDTE.
    RespuestaDte,
    /// Receipts of goods (Ley 19.983).
    EnvioRecibos,
}

impl Schema {
    pub fn file(self) -> &'static str {
        match self {
            Schema::Dte => "DTE_v10.xsd",
            Schema::BoletaDte => "BoletaDTE.xsd",
            Schema::EnvioDte => "EnvioDTE_v10.xsd",
            Schema::EnvioBoleta => "EnvioBOLETA_v11.xsd",
            Schema::RespuestaDte => "RespuestaEnvioDTE_v10.xsd",
            Schema::EnvioRecibos => "EnvioRecibos_v10.xsd",
        }
    }
}

fn schema_dir() -> Result<&'static PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut h: u64 = 0xcbf29ce484222325;
        for (_, bytes) in FILES.iter().chain([&("BoletaDTE.xsd", BOLETA_WRAPPER)]) {
            for b in bytes.iter() {
                h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
            }
        }
        let dir = std::env::temp_dir().join(format!("dte-gateway-schemas-{h:016x}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (name, bytes) in FILES.iter().chain([&("BoletaDTE.xsd", BOLETA_WRAPPER)]) {
            let target = dir.join(name);
            if std::fs::read(&target).ok().as_deref() == Some(*bytes) {
                continue;
            }
            // Write then rename, so a concurrent process never reads half a schema.
            let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes)
                .and_then(|_| std::fs::rename(&tmp, &target))
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        }
        Ok(dir)
    })
    .as_ref()
    .map_err(|e| e.clone())
}

thread_local! {
    static CONTEXTS: RefCell<HashMap<Schema, SchemaValidationContext>> = RefCell::new(HashMap::new());
}

fn compile(kind: Schema) -> Result<SchemaValidationContext, String> {
    super::libxml::init();
    let path = schema_dir()?.join(kind.file());
    let path = path.to_str().ok_or("schema path is not UTF-8")?;
    let mut parser = SchemaParserContext::from_file(path);
    SchemaValidationContext::from_parser(&mut parser).map_err(|errs| {
        format!(
            "cannot compile {}: {}",
            kind.file(),
            errs.iter().filter_map(|e| e.message.clone()).collect::<Vec<_>>().join("; ")
        )
    })
}

/// Validates a parsed document; errors carry libxml2's messages with line numbers.
pub fn validate(kind: Schema, doc: &Document) -> Result<(), Vec<String>> {
    CONTEXTS.with(|cell| {
        let mut map = cell.borrow_mut();
        let ctx = match map.entry(kind) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(compile(kind).map_err(|e| vec![e])?),
        };
        ctx.validate_document(doc).map_err(|errs| {
            errs.into_iter()
                .map(|e| {
                    let msg = e.message.unwrap_or_default();
                    match e.line {
                        Some(l) if l > 0 => format!("line {l}: {}", msg.trim()),
                        _ => msg.trim().to_string(),
                    }
                })
                .collect()
        })
    })
}
