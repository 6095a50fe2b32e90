//! The input takes what real documents carry, in the SII's element names: a driver on a guía,
//! a foreign receptor, reference quantities and prices, dates of manufacture and expiry, postal
//! addresses; one object where the schema allows a list; a number where the schema has a text
//! code; and no prices where the SII allows none (a guía that is not a sale, a nota that only
//! corrects text). Each built document passes `xmllint` against the SII's schema, `xmlsec1`, and
//! `dte verify`; bad values are exit 2 naming the field.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use common::*;

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
    p
}

/// Builds `input` as type `tipo` (folio 9), checks it with the independent verifiers, returns
/// the XML.
fn built(dir: &Path, name: &str, tipo: u16, input: &Value) -> String {
    assert_eq!(input["Encabezado"]["IdDoc"]["TipoDTE"], tipo, "{name}");
    build_verified(dir, name, input, 9).1
}

/// `input` as type `tipo` is refused with exit 2 naming `field`, and nothing is written.
fn refused(dir: &Path, name: &str, tipo: u16, input: &Value, field: &str) {
    let out = dir.join(format!("{name}.xml"));
    let o = build(&write(dir, name, input), &caf(tipo), 9, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
    assert!(text(&o).contains(field), "{name}: {}", text(&o));
    assert!(!out.exists(), "{name}: nothing written");
}

fn receptor() -> Value {
    json!({"RUTRecep": "76555835-2", "RznSocRecep": "Ñandú & Cía. Limitada", "GiroRecep": "Comercio",
           "DirRecep": "Los Aromos 45", "CmnaRecep": "Ñuñoa"})
}

#[test]
fn a_guia_that_is_not_a_sale_carries_a_driver_and_no_prices() {
    let dir = tempfile::tempdir().unwrap();
    // One Detalle written as an object, a numeric Patente and item code, no price anywhere.
    let guia = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 52, "IndTraslado": 5},
            "Receptor": receptor(),
            "Transporte": {"Patente": 123456, "RUTTrans": "76555835-2",
                           "Chofer": {"RUTChofer": "8414240-9", "NombreChofer": "Jorge González Pérez"},
                           "DirDest": "Bodega central", "CmnaDest": "Santiago"}
        },
        "Detalle": {"NmbItem": "Traslado de mercadería a sucursal", "QtyItem": 12, "UnmdItem": "UN",
                    "CdgItem": {"TpoCodigo": "EAN13", "VlrCodigo": 7801234567890_u64}}
    });
    let xml = built(dir.path(), "guia-traslado", 52, &guia);
    assert!(xml.contains("<Totales><MntTotal>0</MntTotal></Totales>"), "{xml}");
    assert!(xml.contains(
        "<Chofer><RUTChofer>8414240-9</RUTChofer><NombreChofer>Jorge González Pérez</NombreChofer></Chofer>"
    ));
    assert!(xml.contains("<Patente>123456</Patente>") && xml.contains("<VlrCodigo>7801234567890</VlrCodigo>"));
    assert!(xml.contains("<MontoItem>0</MontoItem>"), "{xml}");
    // A guía that is a sale still needs its prices.
    let mut sale = guia.clone();
    sale["Encabezado"]["IdDoc"]["IndTraslado"] = json!(1);
    let o = build(&write(dir.path(), "guia-venta", &sale), &caf(52), 9, &dir.path().join("no.xml"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("Detalle[0].PrcItem"), "{}", text(&o));
}

#[test]
fn a_nota_that_only_corrects_text_has_no_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let nc = json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 61}, "Receptor": receptor()},
        "Detalle": [{"NmbItem": "Corrige giro del receptor"}],
        "Referencia": {"TpoDocRef": 33, "FolioRef": 1, "FchRef": "2026-11-02", "CodRef": 2, "RazonRef": "CORRIGE GIRO"}
    });
    let xml = built(dir.path(), "nc-texto", 61, &nc);
    assert!(xml.contains("<Totales><MntTotal>0</MntTotal></Totales>"), "{xml}");
    // Declared as zeros (as other implementations write it), it is the same document.
    let mut ceros = nc.clone();
    ceros["Encabezado"]["Totales"] = json!({"MntNeto": 0, "TasaIVA": 19, "IVA": 0, "MntTotal": 0});
    let xml = built(dir.path(), "nc-ceros", 61, &ceros);
    assert!(xml.contains("<Totales><MntTotal>0</MntTotal></Totales>"), "{xml}");
    // A nota that corrects amounts (CodRef 3) needs them.
    let mut montos = nc.clone();
    montos["Referencia"]["CodRef"] = json!(3);
    let o = build(&write(dir.path(), "nc-montos", &montos), &caf(61), 9, &dir.path().join("no.xml"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_foreign_supplier_reference_prices_and_dates_build_in_the_schemas_order() {
    let dir = tempfile::tempdir().unwrap();
    let compra = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 46},
            "Receptor": {"RUTRecep": "55555555-5", "CdgIntRecep": 4411, "RznSocRecep": "Andes Trading LLC",
                         "Extranjero": {"NumId": "US-99-1234567", "Nacionalidad": 225},
                         "GiroRecep": "Comercio", "DirRecep": "100 Main St", "CmnaRecep": "Santiago",
                         "DirPostal": "Casilla 55", "CmnaPostal": "Santiago", "CiudadPostal": "Santiago"}
        },
        "Detalle": [{"NmbItem": "Arándanos", "QtyRef": 2, "UnmdRef": "CAJA", "PrcRef": 12.5, "QtyItem": 20,
                     "FchElabor": "2026-11-20", "FchVencim": "2026-12-20", "UnmdItem": "KG", "PrcItem": 3100}],
        "DscRcgGlobal": {"TpoMov": "D", "TpoValor": "%", "ValorDR": 5}
    });
    let xml = built(dir.path(), "compra-extranjero", 46, &compra);
    assert!(xml.contains("<Extranjero><NumId>US-99-1234567</NumId><Nacionalidad>225</Nacionalidad></Extranjero>"));
    assert!(xml.contains("<CdgIntRecep>4411</CdgIntRecep>"));
    assert!(xml.contains("<QtyRef>2</QtyRef><UnmdRef>CAJA</UnmdRef><PrcRef>12.5</PrcRef><QtyItem>20</QtyItem>"));
    assert!(xml.contains("<FchElabor>2026-11-20</FchElabor><FchVencim>2026-12-20</FchVencim>"));
    assert!(xml.contains("<DirPostal>Casilla 55</DirPostal>"), "{xml}");
    // 20 × 3100 = 62000, 5 % off = 58900 neto, IVA 11191; total retention (code 15) on the 46.
    assert!(xml.contains("<MntNeto>58900</MntNeto>") && xml.contains("<IVA>11191</IVA>"), "{xml}");
}

#[test]
fn bad_values_of_the_new_elements_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, u16, Value, &str)> = vec![
        (
            "nacionalidad",
            46,
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 46}, "Receptor": {"RUTRecep": "55555555-5", "RznSocRecep": "X",
                   "Extranjero": {"Nacionalidad": "USA1"}}}, "Detalle": [{"NmbItem": "x", "PrcItem": 1}]}),
            "Encabezado.Receptor.Extranjero.Nacionalidad",
        ),
        (
            "chofer",
            52,
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 52, "IndTraslado": 5}, "Receptor": receptor(),
                   "Transporte": {"Chofer": {"RUTChofer": "8414240-8", "NombreChofer": "J"}}}, "Detalle": [{"NmbItem": "x"}]}),
            "Encabezado.Transporte.Chofer.RUTChofer",
        ),
        (
            "nombre-chofer",
            52,
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 52, "IndTraslado": 5}, "Receptor": receptor(),
                   "Transporte": {"Chofer": {"RUTChofer": "8414240-9", "NombreChofer": "J".repeat(31)}}}, "Detalle": [{"NmbItem": "x"}]}),
            "Encabezado.Transporte.Chofer.NombreChofer",
        ),
        (
            "boleta-ref",
            39,
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 39}}, "Detalle": [{"NmbItem": "x", "PrcItem": 1190, "QtyRef": 1}]}),
            "Detalle[0]",
        ),
        (
            "prcref",
            33,
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor()},
                   "Detalle": [{"NmbItem": "x", "PrcItem": 1, "PrcRef": 1.1234567}]}),
            "Detalle[0].PrcRef",
        ),
    ];
    for (name, tipo, input, field) in cases {
        refused(dir.path(), name, tipo, &input, field);
    }
}

/// Every element path under `DTE/Documento` in the SII's schema (`Encabezado/Receptor/RUTRecep`).
fn schema_paths() -> BTreeSet<String> {
    use quick_xml::events::Event;
    // The SII's schemas are ISO-8859-1.
    let xsd: String = std::fs::read(repo("schemas/DTE_v10.xsd")).unwrap().iter().map(|b| *b as char).collect();
    let xsd = xsd.replacen("encoding=\"ISO-8859-1\"", "encoding=\"UTF-8\"", 1);
    let mut r = quick_xml::Reader::from_str(&xsd);
    let (mut stack, mut out, mut buf) = (Vec::<Option<String>>::new(), BTreeSet::new(), Vec::new());
    loop {
        let ev = r.read_event_into(&mut buf).unwrap();
        let (start, e) = match &ev {
            Event::Start(e) if e.local_name().as_ref() == "element" => (true, e),
            Event::Empty(e) if e.local_name().as_ref() == "element" => (false, e),
            Event::End(e) if e.local_name().as_ref() == "element" => {
                stack.pop();
                buf.clear();
                continue;
            }
            Event::Eof => break,
            _ => {
                buf.clear();
                continue;
            }
        };
        let name = e.attributes().flatten().find(|a| a.key.as_ref() == "name").map(|a| a.value.to_string());
        let named: Vec<&String> = stack.iter().flatten().collect();
        if let Some(n) = &name {
            // `DTE` is `DTEDefType`: a `Documento`, a `Liquidacion` or `Exportaciones`, whose
            // contents the input takes alike (a document's root is the same JSON object).
            if !named.is_empty() && ["Documento", "Liquidacion", "Exportaciones"].contains(&named[0].as_str()) {
                let mut path: Vec<&str> = named[1..].iter().map(|s| s.as_str()).collect();
                path.push(n);
                out.insert(path.join("/"));
            }
        }
        if start {
            stack.push(name);
        }
        buf.clear();
    }
    assert!(out.len() > 150 && out.contains("Encabezado/Receptor/RUTRecep"), "{out:?}");
    out
}

/// Every element path the input model takes, from its OpenAPI schema (the serde names).
fn model_paths() -> BTreeSet<String> {
    use utoipa::OpenApi;
    let spec = serde_json::to_value(dte_gateway::http::openapi::ApiDoc::openapi()).unwrap();
    let schemas = &spec["components"]["schemas"];
    fn walk(schemas: &Value, s: &Value, prefix: &str, out: &mut BTreeSet<String>, depth: usize) {
        if depth > 8 {
            return;
        }
        let s = match s.get("$ref").and_then(Value::as_str) {
            Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
            None => s,
        };
        for key in ["oneOf", "anyOf", "allOf"] {
            for alt in s[key].as_array().into_iter().flatten() {
                walk(schemas, alt, prefix, out, depth + 1);
            }
        }
        if let Some(items) = s.get("items") {
            walk(schemas, items, prefix, out, depth + 1);
        }
        for (k, v) in s["properties"].as_object().into_iter().flatten() {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}/{k}") };
            out.insert(path.clone());
            walk(schemas, v, &path, out, depth + 1);
        }
    }
    let mut out = BTreeSet::new();
    walk(schemas, &schemas["DocumentInput"], "", &mut out, 0);
    out
}

/// What the gateway computes or takes from elsewhere (the company, the CAF, the signature).
const COMPUTED: &[&str] = &[
    "Encabezado/Emisor/",
    "TED",
    "TED/",
    "TmstFirma",
    "Encabezado/IdDoc/Folio",
    // The other currency's retentions, computed with the document in it.
    "Encabezado/OtraMoneda/ImpRetOtrMnda",
    "Encabezado/OtraMoneda/ImpRetOtrMnda/",
    "Encabezado/OtraMoneda/IVANoRetOtrMnda",
    // The informed bases and a global discount, converted into the other currency.
    "Encabezado/OtraMoneda/MntFaeCarneOtrMnda",
    "Encabezado/OtraMoneda/MntMargComOtrMnda",
    "DscRcgGlobal/ValorDROtrMnda",
    // The sums of a liquidación-factura's Comisiones.
    "Encabezado/Totales/Comisiones",
    "Encabezado/Totales/Comisiones/",
];

/// Elements of the schema the input cannot carry yet (`X/`: X's whole content). The test fails
/// when one more goes missing and when one of these is taken: the list only shrinks, and is
/// empty now.
const NOT_YET: &[&str] = &[];

fn covered(path: &str, by: &str) -> bool {
    path == by || (by.ends_with('/') && path.starts_with(by))
}

#[test]
fn every_element_of_the_schemas_documento_has_a_place_in_the_input() {
    let model = model_paths();
    assert!(model.contains("Encabezado/Receptor/Extranjero/NumId"), "{model:?}");
    let missing: Vec<String> = schema_paths()
        .into_iter()
        .filter(|p| !COMPUTED.iter().any(|c| covered(p, c)))
        .filter(|p| !model.contains(p))
        .collect();
    let unknown: Vec<&String> = missing.iter().filter(|p| !NOT_YET.iter().any(|k| covered(p, k))).collect();
    assert!(unknown.is_empty(), "elements of the schema with no place in the input: {unknown:?}");
    let taken: Vec<&&str> = NOT_YET.iter().filter(|k| !missing.iter().any(|p| covered(p, k))).collect();
    assert!(taken.is_empty(), "the input takes these now; remove them from NOT_YET: {taken:?}");
}

/// `envio build` of `dtes` with the test material, into `out`.
fn envio(dtes: &[PathBuf], out: &Path) -> std::process::Output {
    let mut c = bin();
    c.args(["envio", "build", "--company"]).arg(repo("examples/company.json"));
    c.arg("--cert").arg(repo("certs/test-company.p12"));
    c.args(["--cert-password", "test1234", "--timestamp", "2026-11-20T12:00:00", "--output"]).arg(out);
    c.args(dtes);
    run(&mut c)
}

#[test]
fn a_boleta_in_the_2025_format_validates_against_the_sii_s_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let boleta = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 39, "MedioPago": 2},
            "Receptor": {"RUTRecep": "76555835-2", "RznSocRecep": "Ñandú & Cía. Limitada", "Contacto": "Mesón 3",
                         "CorreoRecep": "compras@example.cl", "TelefonoRecep": 56223456789_u64,
                         "DirRecep": "Los Aromos 45", "CmnaRecep": "Ñuñoa"}
        },
        "Detalle": {"NmbItem": "Menú del día", "QtyItem": 2, "PrcItem": 8990},
        "GeoRefEmision": {"LatitudEmision": "-33.4378", "LongitudEmision": "-70.6505"}
    });
    let input = write(dir.path(), "boleta-2025", &boleta);
    let out = dir.path().join("boleta-2025.xml");
    let o = build(&input, &caf(39), 9, &out, &["--rut-prov-sw", "76.192.083-9"]);
    assert!(o.status.success(), "{}", text(&o));
    let xml: String = std::fs::read(&out).unwrap().iter().map(|b| *b as char).collect();
    assert!(xml.contains("<FchEmis>") && xml.contains("<MedioPago>2</MedioPago></IdDoc>"), "{xml}");
    assert!(xml.contains("<Contacto>Mesón 3</Contacto><CorreoRecep>compras@example.cl</CorreoRecep><TelefonoRecep>56223456789</TelefonoRecep><DirRecep>"));
    assert!(xml.contains("</Receptor><RUTProvSW>76192083-9</RUTProvSW><Totales>"), "{xml}");
    assert!(xml.contains("<GeoRefEmision><LatitudEmision>-33.4378</LatitudEmision><LongitudEmision>-70.6505</LongitudEmision><SistemaReferencia>1</SistemaReferencia></GeoRefEmision><TED"));
    let x = xmlsec1_verify(&out, "http://www.sii.cl/SiiDte:Documento", None);
    assert!(x.status.success(), "{}", text(&x));
    // The envelope, with an old-format boleta beside it, against the SII's current schema.
    let old = dir.path().join("boleta-old.xml");
    let o = build(&example(39), &caf(39), 10, &old, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let env = dir.path().join("envio-boleta.xml");
    let o = envio(&[out.clone(), old], &env);
    assert!(o.status.success(), "{}", text(&o));
    let l = xmllint("EnvioBOLETA_v11.xsd", &env);
    assert!(l.status.success(), "xmllint: {}", text(&l));
    let v =
        run(bin().args(["dte", "verify", "--trust-test-authority"]).arg(repo("certs/test-authority.pem")).arg(&out));
    assert!(v.status.success() && !text(&v).contains("FAIL"), "{}", text(&v));
}

#[test]
fn the_2025_boleta_fields_are_checked_and_kept_off_other_documents() {
    let dir = tempfile::tempdir().unwrap();
    let boleta = |f: &dyn Fn(&mut Value)| {
        let mut b = json!({"Encabezado": {"IdDoc": {"TipoDTE": 39}}, "Detalle": [{"NmbItem": "x", "PrcItem": 1190}]});
        f(&mut b);
        b
    };
    let factura = |f: &dyn Fn(&mut Value)| {
        let mut b = json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor()},
                           "Detalle": [{"NmbItem": "x", "PrcItem": 1000}]});
        f(&mut b);
        b
    };
    let cases: Vec<(&str, u16, Value, &str)> = vec![
        ("medio-6", 39, boleta(&|b| b["Encabezado"]["IdDoc"]["MedioPago"] = json!(6)), "Encabezado.IdDoc.MedioPago"),
        (
            "medio-ef-boleta",
            39,
            boleta(&|b| b["Encabezado"]["IdDoc"]["MedioPago"] = json!("EF")),
            "Encabezado.IdDoc.MedioPago",
        ),
        (
            "medio-2-factura",
            33,
            factura(&|b| b["Encabezado"]["IdDoc"]["MedioPago"] = json!(2)),
            "Encabezado.IdDoc.MedioPago",
        ),
        (
            "telefono-factura",
            33,
            factura(&|b| b["Encabezado"]["Receptor"]["TelefonoRecep"] = json!("223456789")),
            "Encabezado.Receptor.TelefonoRecep",
        ),
        (
            "geo-factura",
            33,
            factura(&|b| b["GeoRefEmision"] = json!({"LatitudEmision": "-33.4", "LongitudEmision": "-70.6"})),
            "GeoRefEmision",
        ),
        (
            "geo-texto",
            39,
            boleta(&|b| b["GeoRefEmision"] = json!({"LatitudEmision": "norte", "LongitudEmision": "-70.6"})),
            "GeoRefEmision.LatitudEmision",
        ),
    ];
    for (name, tipo, input, field) in cases {
        refused(dir.path(), name, tipo, &input, field);
    }
    // A DTE takes the SII's DTE codes.
    let out = dir.path().join("medio-ef.xml");
    let o = build(
        &write(dir.path(), "medio-ef", &factura(&|b| b["Encabezado"]["IdDoc"]["MedioPago"] = json!("EF"))),
        &caf(33),
        9,
        &out,
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_construction_companys_factura_carries_cred_ec_computed_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let factura = |cred: Value| {
        json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor(), "Totales": {"CredEC": cred}},
               "Detalle": [{"NmbItem": "Estado de pago N° 3, obra Los Aromos", "PrcItem": 1234567}]})
    };
    // IVA = round(1 234 567 × 0.19 = 234 567.73) = 234 568; CredEC = round(234 568 × 0.65 =
    // 152 469.2) = 152 469; MntTotal = 1 234 567 + 234 568 − 152 469 = 1 316 666.
    let xml = built(dir.path(), "credec", 33, &factura(json!(true)));
    assert!(
        xml.contains("<MntNeto>1234567</MntNeto><TasaIVA>19</TasaIVA><IVA>234568</IVA><CredEC>152469</CredEC><MntTotal>1316666</MntTotal>"),
        "{xml}"
    );
    // An amount under the limit is taken as given: 1 234 567 + 234 568 − 100 000 = 1 369 135.
    let xml = built(dir.path(), "credec-given", 33, &factura(json!(100000)));
    assert!(xml.contains("<CredEC>100000</CredEC><MntTotal>1369135</MntTotal>"), "{xml}");
    // On a nota de crédito too.
    let mut nc = factura(json!(true));
    nc["Encabezado"]["IdDoc"]["TipoDTE"] = json!(61);
    nc["Referencia"] =
        json!({"TpoDocRef": 33, "FolioRef": 9, "FchRef": "2026-11-02", "CodRef": 1, "RazonRef": "ANULA"});
    let xml = built(dir.path(), "credec-nc", 61, &nc);
    assert!(xml.contains("<CredEC>152469</CredEC><MntTotal>1316666</MntTotal>"), "{xml}");
    // Over the limit, on a 34, or without IVA: exit 2 naming the field, nothing written.
    let mut exenta = factura(json!(true));
    exenta["Encabezado"]["IdDoc"]["TipoDTE"] = json!(34);
    for (name, tipo, input) in [
        ("credec-over", 33, factura(json!(152470))),
        ("credec-34", 34, exenta),
        ("credec-text", 33, factura(json!("sí"))),
    ] {
        refused(dir.path(), name, tipo, &input, "Encabezado.Totales.CredEC");
    }
}

#[test]
fn a_factura_de_compra_withholds_all_the_iva_unless_it_says_code_49() {
    let dir = tempfile::tempdir().unwrap();
    let compra = |line: Value| {
        json!({"Encabezado": {"IdDoc": {"TipoDTE": 46}, "Receptor": {"RUTRecep": "8414240-9", "RznSocRecep": "Jorge González",
               "GiroRecep": "Agricultor", "DirRecep": "Parcela 7", "CmnaRecep": "San Carlos"}}, "Detalle": [line]})
    };
    // No code: total retention (15). IVA 19 000 withheld: MntTotal = 100 000 + 19 000 − 19 000.
    let xml = built(dir.path(), "compra-15", 46, &compra(json!({"NmbItem": "Trigo", "PrcItem": 100000})));
    assert!(xml.contains("<ImptoReten><TipoImp>15</TipoImp><TasaImp>19</TasaImp><MontoImp>19000</MontoImp></ImptoReten><MntTotal>100000</MntTotal>"), "{xml}");
    // Code 49 (the SII's factura de compra without retention): IVA not withheld, total 119 000.
    let xml =
        built(dir.path(), "compra-49", 46, &compra(json!({"NmbItem": "Trigo", "PrcItem": 100000, "CodImpAdic": 49})));
    assert!(xml.contains("<CodImpAdic>49</CodImpAdic>") && !xml.contains("<ImptoReten>"), "{xml}");
    assert!(xml.contains("<IVA>19000</IVA><MntTotal>119000</MntTotal>"), "{xml}");
}

/// `built`, for a liquidación-factura: the signed element is a `Liquidacion`.
fn built_liq(dir: &Path, name: &str, input: &Value) -> String {
    build_verified(dir, name, input, 9).1
}

#[test]
fn a_liquidacion_factura_settles_the_sales_and_subtracts_the_commissions() {
    let dir = tempfile::tempdir().unwrap();
    let input: Value = serde_json::from_slice(&std::fs::read(example(43)).unwrap()).unwrap();
    // MntNeto = 451 658 + 177 790 = 629 448; MntExe 137 778; IVA = round(629 448 × 0.19 =
    // 119 595.12) = 119 595. Commissions: ValComNeto 12 589 + 5 000 = 17 589, their IVA
    // round(2 391.91) + 950 = 2 392 + 950 = 3 342. MntTotal = 629 448 + 137 778 + 119 595 − 17 589
    // − 0 − 3 342 = 865 890.
    let xml = built_liq(dir.path(), "liq", &input);
    assert!(xml.contains("<Liquidacion ID=\"F9T43\">"), "{xml}");
    assert!(
        xml.contains("<MntNeto>629448</MntNeto><MntExe>137778</MntExe><TasaIVA>19</TasaIVA><IVA>119595</IVA><Comisiones><ValComNeto>17589</ValComNeto><ValComExe>0</ValComExe><ValComIVA>3342</ValComIVA></Comisiones><MntTotal>865890</MntTotal>"),
        "{xml}"
    );
    assert!(xml.contains("<NroLinDet>1</NroLinDet><TpoDocLiq>33</TpoDocLiq>"), "{xml}");
    assert!(xml.contains("<Comisiones><NroLinCom>1</NroLinCom><TipoMovim>C</TipoMovim><Glosa>Comisión de venta 2 % sobre ventas afectas</Glosa><TasaComision>2</TasaComision><ValComNeto>12589</ValComNeto><ValComExe>0</ValComExe><ValComIVA>2392</ValComIVA></Comisiones>"), "{xml}");
    // A settled nota de crédito is a negative line: MntNeto = 629 448 − 29 448 = 600 000, IVA
    // 114 000; MntTotal = 600 000 + 137 778 + 114 000 − 17 589 − 3 342 = 830 847.
    let mut with_nc = input.clone();
    with_nc["Detalle"]
        .as_array_mut()
        .unwrap()
        .push(json!({"TpoDocLiq": 61, "NmbItem": "Nota de crédito 40", "MontoItem": -29448}));
    let xml = built_liq(dir.path(), "liq-nc", &with_nc);
    assert!(
        xml.contains("<MontoItem>-29448</MontoItem>")
            && xml.contains("<IVA>114000</IVA>")
            && xml.contains("<MntTotal>830847</MntTotal>"),
        "{xml}"
    );

    // Without commissions, with a line missing its TpoDocLiq, with a discount, or Comisiones on a
    // factura: exit 2 naming the field, nothing written.
    let mut none = input.clone();
    none.as_object_mut().unwrap().remove("Comisiones");
    let mut no_liq = input.clone();
    no_liq["Detalle"][0].as_object_mut().unwrap().remove("TpoDocLiq");
    let mut discount = input.clone();
    discount["DscRcgGlobal"] = json!({"TpoMov": "D", "TpoValor": "%", "ValorDR": 5});
    let mut on_33 = json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor()}, "Detalle": [{"NmbItem": "x", "PrcItem": 1}]});
    on_33["Comisiones"] = input["Comisiones"].clone();
    let mut bad_iva = input.clone();
    bad_iva["Comisiones"][1]["ValComIVA"] = json!(951);
    for (name, tipo, doc, field) in [
        ("liq-none", 43, none, "Comisiones"),
        ("liq-tpodocliq", 43, no_liq, "Detalle[0].TpoDocLiq"),
        ("liq-discount", 43, discount, "DscRcgGlobal"),
        ("liq-on-33", 33, on_33, "Comisiones"),
        ("liq-iva", 43, bad_iva, "Comisiones[1].ValComIVA"),
    ] {
        refused(dir.path(), name, tipo, &doc, field);
    }
}

#[test]
fn payment_details_and_the_mandante_build_in_the_schemas_order() {
    let dir = tempfile::tempdir().unwrap();
    let factura = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 33, "FmaPago": 2, "MntCancel": 50000, "SaldoInsol": 69000,
                      "MntPagos": [{"FchPago": "2026-12-20", "MntPago": 69000, "GlosaPagos": "Saldo a 30 días"}],
                      "TpoCtaPago": "CORRIENTE", "NumCtaPago": 123456789, "BcoPago": "Banco de Prueba",
                      "TermPagoCdg": 30, "TermPagoGlosa": "30 días"},
            "RUTMandante": "8.414.240-9",
            "Receptor": receptor(),
            "RUTSolicita": "76.555.835-2"
        },
        "Detalle": {"NmbItem": "Servicio", "PrcItem": 100000}
    });
    let xml = built(dir.path(), "pagos", 33, &factura);
    assert!(xml.contains("<FmaPago>2</FmaPago><MntCancel>50000</MntCancel><SaldoInsol>69000</SaldoInsol><MntPagos><FchPago>2026-12-20</FchPago><MntPago>69000</MntPago><GlosaPagos>Saldo a 30 días</GlosaPagos></MntPagos>"), "{xml}");
    assert!(xml.contains("<TpoCtaPago>CORRIENTE</TpoCtaPago><NumCtaPago>123456789</NumCtaPago><BcoPago>Banco de Prueba</BcoPago><TermPagoCdg>30</TermPagoCdg><TermPagoGlosa>30 días</TermPagoGlosa>"), "{xml}");
    assert!(xml.contains("</Emisor><RUTMandante>8414240-9</RUTMandante><Receptor>"), "{xml}");
    assert!(xml.contains("</Receptor><RUTSolicita>76555835-2</RUTSolicita><Totales>"), "{xml}");
    let mut cuenta = factura.clone();
    cuenta["Encabezado"]["IdDoc"]["TpoCtaPago"] = json!("PLAZO");
    let boleta = json!({"Encabezado": {"IdDoc": {"TipoDTE": 39, "MntCancel": 1190}}, "Detalle": [{"NmbItem": "x", "PrcItem": 1190}]});
    let mut liq: Value = serde_json::from_slice(&std::fs::read(example(43)).unwrap()).unwrap();
    liq["Encabezado"]["RUTMandante"] = json!("8414240-9");
    for (name, tipo, doc, field) in [
        ("cuenta", 33, cuenta, "Encabezado.IdDoc.TpoCtaPago"),
        ("boleta-pagos", 39, boleta, "Encabezado.IdDoc"),
        ("liq-mandante", 43, liq, "Encabezado.RUTMandante"),
    ] {
        refused(dir.path(), name, tipo, &doc, field);
    }
}

#[test]
fn subtotals_quantities_by_code_breakdowns_and_the_withholding_agent_build() {
    let dir = tempfile::tempdir().unwrap();
    let factura = json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor()},
        "Detalle": [
            {"NmbItem": "Polera", "QtyItem": 10, "Subcantidad": [{"SubQty": 4, "SubCod": "M"}, {"SubQty": 6, "SubCod": 42}],
             "PrcItem": 5000, "DescuentoPct": 10, "SubDscto": {"TipoDscto": "%", "ValorDscto": 10}},
            {"NmbItem": "Vino", "Retenedor": {"IndAgente": "R", "PrcConsFinal": 5990}, "PrcItem": 4000,
             "RecargoMonto": 500, "SubRecargo": [{"TipoRecargo": "$", "ValorRecargo": 500}]}
        ],
        "SubTotInfo": {"GlosaSTI": "Vestuario", "OrdenSTI": 1, "SubTotNetoSTI": 45000, "LineasDeta": 1}
    });
    let xml = built(dir.path(), "informativos", 33, &factura);
    assert!(xml.contains("<QtyItem>10</QtyItem><Subcantidad><SubQty>4</SubQty><SubCod>M</SubCod></Subcantidad><Subcantidad><SubQty>6</SubQty><SubCod>42</SubCod></Subcantidad>"), "{xml}");
    assert!(xml.contains("<DescuentoMonto>5000</DescuentoMonto><SubDscto><TipoDscto>%</TipoDscto><ValorDscto>10</ValorDscto></SubDscto>"), "{xml}");
    assert!(
        xml.contains(
            "<Retenedor><IndAgente>R</IndAgente><PrcConsFinal>5990</PrcConsFinal></Retenedor><NmbItem>Vino</NmbItem>"
        ),
        "{xml}"
    );
    assert!(xml.contains("<SubTotInfo><NroSTI>1</NroSTI><GlosaSTI>Vestuario</GlosaSTI><OrdenSTI>1</OrdenSTI><SubTotNetoSTI>45000</SubTotNetoSTI><LineasDeta>1</LineasDeta></SubTotInfo>"), "{xml}");
    let mut bad_line = factura.clone();
    bad_line["SubTotInfo"]["LineasDeta"] = json!(3);
    let mut bad_tipo = factura.clone();
    bad_tipo["Detalle"][0]["SubDscto"]["TipoDscto"] = json!("x");
    let boleta = json!({"Encabezado": {"IdDoc": {"TipoDTE": 39}}, "Detalle": [{"NmbItem": "x", "PrcItem": 1190, "Retenedor": {"IndAgente": "R"}}]});
    refused(dir.path(), "sti-line", 33, &bad_line, "SubTotInfo[0].LineasDeta[0]");
    refused(dir.path(), "subdscto", 33, &bad_tipo, "Detalle[0].SubDscto[0].TipoDscto");
    refused(dir.path(), "retenedor-boleta", 39, &boleta, "Detalle[0].Retenedor");
}

/// Ley 21.713 (boleta format v4.2, 2025-09): above 135 UF a boleta names its buyer and its means
/// of payment. At a UF of 39 643,59 pesos the limit is 5 351 884,65 pesos.
#[test]
fn a_boleta_above_135_uf_names_its_buyer_and_means_of_payment() {
    let dir = tempfile::tempdir().unwrap();
    let uf = ["--uf-pesos", "39643.59"];
    // 5 351 884 pesos: below the limit, an anonymous boleta as before.
    let below =
        json!({"Encabezado": {"IdDoc": {"TipoDTE": 39}}, "Detalle": {"NmbItem": "Notebook", "PrcItem": 5351884}});
    let out = dir.path().join("below.xml");
    let o = build(&write(dir.path(), "below", &below), &caf(39), 9, &out, &uf);
    assert!(o.status.success(), "{}", text(&o));
    // 5 351 885 pesos: above it; every missing element is named, nothing is written.
    let above =
        json!({"Encabezado": {"IdDoc": {"TipoDTE": 39}}, "Detalle": {"NmbItem": "Notebook", "PrcItem": 5351885}});
    let out = dir.path().join("above.xml");
    let o = build(&write(dir.path(), "above", &above), &caf(39), 10, &out, &uf);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    for field in [
        "Encabezado.Receptor.RUTRecep",
        "Encabezado.Receptor.CdgIntRecep",
        "Encabezado.Receptor.RznSocRecep",
        "Encabezado.IdDoc.MedioPago",
    ] {
        assert!(text(&o).contains(field), "{field}: {}", text(&o));
    }
    assert!(!out.exists());
    // Without the UF the rule is not applied.
    let o = build(&write(dir.path(), "above", &above), &caf(39), 10, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    // Named, it builds and validates against the SII's current schema.
    let named = json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 39, "MedioPago": 3},
                       "Receptor": {"RUTRecep": "76555835-2", "CdgIntRecep": "C-1001", "RznSocRecep": "Ñandú & Cía. Limitada"}},
        "Detalle": {"NmbItem": "Notebook", "PrcItem": 5351885}
    });
    let out = dir.path().join("named.xml");
    let o = build(&write(dir.path(), "named", &named), &caf(39), 11, &out, &uf);
    assert!(o.status.success(), "{}", text(&o));
    let env = dir.path().join("envio-named.xml");
    let o = envio(&[out], &env);
    assert!(o.status.success(), "{}", text(&o));
    let l = xmllint("EnvioBOLETA_v11.xsd", &env);
    assert!(l.status.success(), "xmllint: {}", text(&l));
}

/// Gross amounts (MntBruto), a deposit on containers (GrntDep), the third party's IVA, the
/// meat-slaughter base of code 17 and an informed margin base, and a global discount in the
/// other currency: Formato DTE v2.2, fields 10 and 109–124.
#[test]
fn special_totals_build_with_hand_checked_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let bruto = json!({"Encabezado": {"IdDoc": {"TipoDTE": 33, "MntBruto": 1}, "Receptor": receptor()},
                       "Detalle": [{"NmbItem": "Almuerzo", "PrcItem": 11900}, {"NmbItem": "Café", "QtyItem": 2, "PrcItem": 2975}]});
    let xml = built(dir.path(), "bruto", 33, &bruto);
    // Gross 11 900 + 5 950 = 17 850; neto round(17 850 / 1,19) = 15 000; IVA the rest, 2 850.
    assert!(xml.contains("<FchEmis>2026-11-20</FchEmis><MntBruto>1</MntBruto></IdDoc>"), "{xml}");
    assert!(
        xml.contains("<MntNeto>15000</MntNeto><TasaIVA>19</TasaIVA><IVA>2850</IVA><MntTotal>17850</MntTotal>"),
        "{xml}"
    );

    let envases = json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor(),
                                        "Totales": {"IVATerc": 760}},
                         "Detalle": [{"NmbItem": "Cerveza 1 l", "QtyItem": 10, "PrcItem": 1000},
                                     {"NmbItem": "Envase retornable", "QtyItem": 10, "PrcItem": 150, "IndExe": 3}]});
    let xml = built(dir.path(), "envases", 33, &envases);
    // Neto 10 000, IVA 1 900 (of which 760 a third party's: IVAProp 1 140), deposit 10 × 150 =
    // 1 500 added: 10 000 + 1 900 + 1 500 = 13 400.
    assert!(xml.contains("<MntNeto>10000</MntNeto><TasaIVA>19</TasaIVA><IVA>1900</IVA><IVAProp>1140</IVAProp><IVATerc>760</IVATerc><GrntDep>1500</GrntDep><MntTotal>13400</MntTotal>"), "{xml}");

    let carne = json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor(),
                                      "Totales": {"MntBase": 800000, "MntMargenCom": 120000},
                                      "OtraMoneda": {"TpoMoneda": "DOLAR USA", "TpoCambio": 900}},
                       "Detalle": {"NmbItem": "Vacuno en vara", "PrcItem": 1000000, "CodImpAdic": 17},
                       "DscRcgGlobal": {"TpoMov": "D", "TpoValor": "%", "ValorDR": 10}});
    let xml = built(dir.path(), "carne", 33, &carne);
    // Neto 1 000 000 − 10 % = 900 000; IVA 171 000; code 17 is 5 % of MntBase 800 000 = 40 000
    // (not of the lines); total 900 000 + 171 000 + 40 000 = 1 111 000.
    assert!(xml.contains("<MntNeto>900000</MntNeto><MntBase>800000</MntBase><MntMargenCom>120000</MntMargenCom><TasaIVA>19</TasaIVA><IVA>171000</IVA><ImptoReten><TipoImp>17</TipoImp><TasaImp>5</TasaImp><MontoImp>40000</MontoImp></ImptoReten><MntTotal>1111000</MntTotal>"), "{xml}");
    // In dollars at 900: 900 000 / 900 = 1 000; the bases 888,8889 and 133,3333; the 10 % is
    // 100 000 pesos, 111,1111 dollars.
    assert!(xml.contains("<MntNetoOtrMnda>1000</MntNetoOtrMnda><MntFaeCarneOtrMnda>888.8889</MntFaeCarneOtrMnda><MntMargComOtrMnda>133.3333</MntMargComOtrMnda>"), "{xml}");
    assert!(xml.contains("<ValorDR>10</ValorDR><ValorDROtrMnda>111.1111</ValorDROtrMnda>"), "{xml}");

    let usd = json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor(),
                                    "OtraMoneda": {"TpoMoneda": "DOLAR USA", "TpoCambio": 900}},
                     "Detalle": {"NmbItem": "Licencia", "QtyItem": 2, "OtrMnda": {"PrcOtrMon": 50}},
                     "DscRcgGlobal": {"TpoMov": "D", "TpoValor": "%", "ValorDR": 10}});
    let xml = built(dir.path(), "usd-global", 33, &usd);
    // Dollars: 100 − 10 % (10) = 90, IVA 17,1, total 107,1. Pesos: 2 × 45 000 = 90 000 − 9 000 =
    // 81 000, IVA 15 390, total 96 390.
    assert!(xml.contains("<ValorDR>10</ValorDR><ValorDROtrMnda>10</ValorDROtrMnda>"), "{xml}");
    assert!(
        xml.contains("<MntNeto>81000</MntNeto><TasaIVA>19</TasaIVA><IVA>15390</IVA><MntTotal>96390</MntTotal>"),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<MntNetoOtrMnda>90</MntNetoOtrMnda><IVAOtrMnda>17.1</IVAOtrMnda><MntTotOtrMnda>107.1</MntTotOtrMnda>"
        ),
        "{xml}"
    );

    let cases = [
        (
            "bruto-guia",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 52, "IndTraslado": 1, "MntBruto": 1}, "Receptor": receptor()},
            "Detalle": {"NmbItem": "x", "PrcItem": 1190}}),
            52,
            "Encabezado.IdDoc.MntBruto",
        ),
        (
            "bruto-impuesto",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33, "MntBruto": 1}, "Receptor": receptor()},
            "Detalle": {"NmbItem": "x", "PrcItem": 1190, "CodImpAdic": 24}}),
            33,
            "Encabezado.IdDoc.MntBruto",
        ),
        (
            "envase-guia",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 52, "IndTraslado": 1}, "Receptor": receptor()},
            "Detalle": {"NmbItem": "x", "PrcItem": 150, "IndExe": 3}}),
            52,
            "Detalle[0].IndExe",
        ),
        (
            "terceros-34",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 34}, "Receptor": receptor(), "Totales": {"IVATerc": 1}},
            "Detalle": {"NmbItem": "x", "PrcItem": 150}}),
            34,
            "Encabezado.Totales.IVATerc",
        ),
        (
            "terceros-exceso",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor(), "Totales": {"IVATerc": 191}},
            "Detalle": {"NmbItem": "x", "PrcItem": 1000}}),
            33,
            "Encabezado.Totales.IVATerc",
        ),
        (
            "base-cero",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor(), "Totales": {"MntBase": 0}},
            "Detalle": {"NmbItem": "x", "PrcItem": 1000}}),
            33,
            "Encabezado.Totales.MntBase",
        ),
        (
            "deposito-declarado",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor(), "Totales": {"GrntDep": 10}},
            "Detalle": [{"NmbItem": "x", "PrcItem": 1000}, {"NmbItem": "Envase", "PrcItem": 150, "IndExe": 3}]}),
            33,
            "Encabezado.Totales.GrntDep",
        ),
    ];
    for (name, input, tipo, field) in cases {
        refused(dir.path(), name, tipo, &input, field);
    }
}
