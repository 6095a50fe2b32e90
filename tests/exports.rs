//! Export documents (110, 111, 112) built from the SII's two export certification sets
//! (`set de exportación` 1 and 2, cases 493307-1..3 and 493308-1..3), with the totals the sets'
//! figures give worked out by hand below. Each document passes `xmllint` against DTE_v10.xsd and,
//! in its EnvioDTE, against EnvioDTE_v10.xsd; `xmlsec1 --verify`; and `dte verify` (signature,
//! TED with the CAF key). Bad export input is exit 2 naming the field, with nothing written.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use common::*;

const FECHA: &str = "2026-11-20";

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
    p
}

fn built(dir: &Path, name: &str, input: &Value, folio: u64) -> (PathBuf, String) {
    build_verified(dir, name, input, folio)
}

/// `input` is refused with exit 2 naming `field`, and nothing is written.
fn refused(dir: &Path, name: &str, input: &Value, field: &str) {
    let tipo = input["Encabezado"]["IdDoc"]["TipoDTE"].as_u64().unwrap() as u16;
    let out = dir.join(format!("{name}.xml"));
    let o = build(&write(dir, name, input), &caf(tipo), 9, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
    assert!(text(&o).contains(field), "{name} should name {field}: {}", text(&o));
    assert!(!out.exists(), "{name}: nothing written");
}

fn between<'a>(xml: &'a str, open: &str, close: &str) -> &'a str {
    let start = xml.find(open).unwrap_or_else(|| panic!("no {open} in {xml}")) + open.len();
    &xml[start..start + xml[start..].find(close).unwrap()]
}

fn envio_validates(dir: &Path, dtes: &[PathBuf]) {
    let out = dir.join("envio.xml");
    let mut c = bin();
    c.args(["envio", "build", "--company"]).arg(repo("examples/company.json"));
    c.arg("--cert").arg(repo("certs/test-company.p12"));
    c.args(["--cert-password", "test1234", "--timestamp", "2026-11-20T12:00:00", "--output"]).arg(&out);
    c.args(dtes);
    let o = run(&mut c);
    assert!(o.status.success(), "envio build: {}", text(&o));
    let l = xmllint("EnvioDTE_v10.xsd", &out);
    assert!(l.status.success(), "xmllint rejects the EnvioDTE: {}", text(&l));
    let v =
        run(bin().args(["dte", "verify", "--trust-test-authority"]).arg(repo("certs/test-authority.pem")).arg(&out));
    assert!(v.status.success() && !text(&v).contains("FAIL"), "dte verify envelope: {}", text(&v));
}

fn receptor_au() -> Value {
    json!({"RUTRecep": "55555555-5", "RznSocRecep": "Scrap Metals Pty Ltd", "GiroRecep": "Recycling",
           "DirRecep": "12 Harbour St, Sydney", "Extranjero": {"NumId": "ABN 51 824 753 556", "Nacionalidad": "AUSTRALIA"}})
}

fn set(caso: &str) -> Value {
    json!({"TpoDocRef": "SET", "FolioRef": 0, "FchRef": FECHA, "RazonRef": format!("CASO {caso}")})
}

/// Set de exportación 1: a factura in euros, a credit note returning part of the goods at the
/// invoice's unit price, and a debit note annulling the credit note.
#[test]
fn set_de_exportacion_1_invoice_credit_note_and_debit_note() {
    let dir = tempfile::tempdir().unwrap();
    let factura = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 110, "FchEmis": FECHA, "FmaPagExp": "COBRANZA"},
            "Receptor": receptor_au(),
            "Transporte": {"Aduana": {
                "CodModVenta": "BAJO CONDICION", "CodClauVenta": "CIF", "TotClauVenta": 1662.39,
                "CodViaTransp": "CARRETERO/TERRESTRE", "CodPtoEmbarque": "CALDERA", "CodPtoDesemb": "SIDNEY",
                "CodUnidMedTara": "U", "CodUnidPesoBruto": "KN", "CodUnidPesoNeto": "KN",
                "TotBultos": 38, "TipoBultos": {"CodTpoBultos": "PALLETS", "CantBultos": 38, "Marcas": "SCRAP-AU"},
                "MntFlete": 460.59, "MntSeguro": 127.61, "CodPaisRecep": "AUSTRALIA", "CodPaisDestin": "AUSTRALIA"}},
            "Totales": {"TpoMoneda": "EURO"},
            "OtraMoneda": {"TpoMoneda": "PESO CL", "TpoCambio": 1021.53}
        },
        "Detalle": [{"NmbItem": "CHATARRA DE ALUMINIO", "QtyItem": 377, "UnmdItem": "KN", "PrcItem": 128,
                     "Subcantidad": [{"SubQty": 200, "SubCod": "LOTE-A", "TipCodSubQty": "LOTE"},
                                     {"SubQty": 177, "SubCod": "LOTE-B", "TipCodSubQty": "LOTE"}]}],
        "Referencia": [set("493307-1"), {"TpoDocRef": 810, "FolioRef": "MIC-2026-118", "FchRef": FECHA}]
    });
    let (f110, xml) = built(dir.path(), "493307-1", &factura, 1);
    // 377 KN × 128 EUR = 48 256 EUR, exempt; in pesos at 1 021,53: 48 256 × 1 021,53 =
    // 49 294 951,68, rounded once to 49 294 952.
    assert!(xml.contains("<Totales><TpoMoneda>EURO</TpoMoneda><MntExe>48256</MntExe><MntTotal>48256</MntTotal></Totales><OtraMoneda><TpoMoneda>PESO CL</TpoMoneda><TpoCambio>1021.53</TpoCambio><MntExeOtrMnda>49294952</MntExeOtrMnda><MntTotOtrMnda>49294952</MntTotOtrMnda></OtraMoneda>"), "{xml}");
    // The names became the Aduana's codes: COBRANZA 2, BAJO CONDICIÓN 2, CIF 1, CARRETERO 7,
    // CALDERA 918, SIDNEY 811, U 10, KN 6, PALLETS 80, AUSTRALIA 406.
    assert!(xml.contains("<FmaPagExp>2</FmaPagExp>") && xml.contains("<Nacionalidad>406</Nacionalidad>"));
    assert_eq!(
        between(&xml, "<Aduana>", "</Aduana>"),
        "<CodModVenta>2</CodModVenta><CodClauVenta>1</CodClauVenta><TotClauVenta>1662.39</TotClauVenta>\
<CodViaTransp>7</CodViaTransp><CodPtoEmbarque>918</CodPtoEmbarque><CodPtoDesemb>811</CodPtoDesemb>\
<CodUnidMedTara>10</CodUnidMedTara><CodUnidPesoBruto>6</CodUnidPesoBruto><CodUnidPesoNeto>6</CodUnidPesoNeto>\
<TotBultos>38</TotBultos><TipoBultos><CodTpoBultos>80</CodTpoBultos><CantBultos>38</CantBultos><Marcas>SCRAP-AU</Marcas></TipoBultos>\
<MntFlete>460.59</MntFlete><MntSeguro>127.61</MntSeguro><CodPaisRecep>406</CodPaisRecep><CodPaisDestin>406</CodPaisDestin>"
    );
    assert!(xml.contains("<MNT>48256</MNT>"));
    assert!(xml.contains(
        "<Subcantidad><SubQty>200</SubQty><SubCod>LOTE-A</SubCod><TipCodSubQty>LOTE</TipCodSubQty></Subcantidad>"
    ));

    // 126 KN returned at the invoice's unit price: 126 × 128 = 16 128 EUR.
    let nota_credito = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 112, "FchEmis": FECHA, "FmaPagExp": 2},
            "Receptor": receptor_au(),
            "Totales": {"TpoMoneda": "EURO", "MntExe": 16128, "MntTotal": 16128}
        },
        "Detalle": {"NmbItem": "CHATARRA DE ALUMINIO", "QtyItem": 126, "UnmdItem": "KN", "PrcItem": 128},
        "Referencia": [set("493307-2"),
                       {"TpoDocRef": 110, "FolioRef": 1, "FchRef": FECHA, "CodRef": 3, "RazonRef": "DEVOLUCION DE MERCADERIA"}]
    });
    let (f112, xml) = built(dir.path(), "493307-2", &nota_credito, 1);
    assert!(
        xml.contains("<Totales><TpoMoneda>EURO</TpoMoneda><MntExe>16128</MntExe><MntTotal>16128</MntTotal></Totales>")
    );
    assert!(
        xml.contains("<TpoDocRef>110</TpoDocRef><FolioRef>1</FolioRef><FchRef>2026-11-20</FchRef><CodRef>3</CodRef>")
    );

    // The debit note annuls the credit note: the same 16 128 EUR.
    let nota_debito = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 111, "FchEmis": FECHA},
            "Receptor": receptor_au(),
            "Totales": {"TpoMoneda": 142}
        },
        "Detalle": {"NmbItem": "CHATARRA DE ALUMINIO", "QtyItem": 126, "UnmdItem": "KN", "PrcItem": 128},
        "Referencia": [set("493307-3"),
                       {"TpoDocRef": 112, "FolioRef": 1, "FchRef": FECHA, "CodRef": 1, "RazonRef": "ANULA NOTA DE CREDITO"}]
    });
    let (f111, xml) = built(dir.path(), "493307-3", &nota_debito, 1);
    assert!(
        xml.contains("<Totales><TpoMoneda>EURO</TpoMoneda><MntExe>16128</MntExe><MntTotal>16128</MntTotal></Totales>")
    );
    envio_validates(dir.path(), &[f110, f112, f111]);
}

/// Set de exportación 2: a service with a 10 % line surcharge, goods with a 5 % line discount
/// and an 11 % global surcharge, and hotel services to a foreign tourist.
#[test]
fn set_de_exportacion_2_surcharges_discounts_and_services() {
    let dir = tempfile::tempdir().unwrap();
    let receptor_es = json!({"RUTRecep": "55555555-5", "RznSocRecep": "Frutas Ibéricas S.L.", "GiroRecep": "Importación",
                             "DirRecep": "Carrer de Mallorca 100, Barcelona", "Extranjero": {"Nacionalidad": "ESPANA"}});
    let transporte = |extra: Value| {
        let mut a = json!({"CodClauVenta": "CFR", "CodViaTransp": "MARITIMA, FLUVIAL Y LACUSTRE",
                           "CodPtoEmbarque": "SAN ANTONIO", "CodPtoDesemb": "BARCELONA",
                           "CodPaisRecep": "ESPANA", "CodPaisDestin": "ESPANA"});
        a.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"Aduana": a})
    };
    let servicio = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 110, "FchEmis": FECHA, "IndServicio": 3, "FmaPagExp": "SIN PAGO"},
            "Receptor": receptor_es,
            "Transporte": transporte(json!({})),
            "Totales": {"TpoMoneda": "LIBRA EST"}
        },
        "Detalle": {"NmbItem": "ASESORIAS Y PROYECTOS PROFESIONALES", "PrcItem": 78, "RecargoPct": 10},
        "Referencia": [set("493308-1"), {"TpoDocRef": 812, "FolioRef": "SNA-4471", "FchRef": FECHA}]
    });
    let (a, xml) = built(dir.path(), "493308-1", &servicio, 2);
    // 78 GBP + 10 %: 7,8, written whole as the schema's RecargoMonto is (MntImpType) → 8; 78 + 8 = 86.
    assert!(
        xml.contains(
            "<PrcItem>78</PrcItem><RecargoPct>10</RecargoPct><RecargoMonto>8</RecargoMonto><MontoItem>86</MontoItem>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<Totales><TpoMoneda>LIBRA EST</TpoMoneda><MntExe>86</MntExe><MntTotal>86</MntTotal></Totales>")
    );
    assert!(xml.contains("<IndServicio>3</IndServicio><FmaPagExp>21</FmaPagExp>"), "{xml}");

    let mercaderias = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 110, "FchEmis": FECHA, "FmaPagExp": 21},
            "Receptor": receptor_es,
            "Transporte": transporte(json!({"CodModVenta": "EN CONSIGNACION CON UN MINIMO A FIRME", "TotClauVenta": 4702.98,
                "CodUnidMedTara": "PAR", "CodUnidPesoBruto": "LT", "CodUnidPesoNeto": "LT", "TotBultos": 88,
                "TipoBultos": [{"CodTpoBultos": "ROLLOS", "CantBultos": 88}], "MntFlete": 3686.34, "MntSeguro": 2889.47})),
            "Totales": {"TpoMoneda": "LIBRA EST"}
        },
        "Detalle": [
            {"NmbItem": "CAJAS CIRUELAS TIERNIZADAS SIN CAROZO CALIBRE 60/70", "QtyItem": 884, "UnmdItem": "KN",
             "PrcItem": 178, "DescuentoPct": 5},
            {"NmbItem": "CAJAS DE PASAS DE UVA FLAME MORENA SIN SEMILLA MEDIANAS", "QtyItem": 228, "UnmdItem": "KN",
             "PrcItem": 119}
        ],
        "DscRcgGlobal": {"TpoMov": "R", "GlosaDR": "COMISIONES EN EL EXTRANJERO", "TpoValor": "%", "ValorDR": 11},
        "Referencia": [set("493308-2"), {"TpoDocRef": 807, "FolioRef": "DUS-88120", "FchRef": FECHA},
                       {"TpoDocRef": 809, "FolioRef": "AWB-0457", "FchRef": FECHA}]
    });
    let (b, xml) = built(dir.path(), "493308-2", &mercaderias, 3);
    // Line 1: 884 × 178 = 157 352; 5 % = 7 867,6, whole (MntImpType) 7 868; 157 352 − 7 868 = 149 484.
    // Line 2: 228 × 119 = 27 132. Lines: 149 484 + 27 132 = 176 616.
    // Commissions abroad, 11 % of that total: 19 427,76 (4 decimals kept). 176 616 + 19 427,76 = 196 043,76.
    assert!(
        xml.contains(
            "<DescuentoPct>5</DescuentoPct><DescuentoMonto>7868</DescuentoMonto><MontoItem>149484</MontoItem>"
        ),
        "{xml}"
    );
    assert!(xml.contains("<MontoItem>27132</MontoItem>"));
    assert!(xml.contains("<Totales><TpoMoneda>LIBRA EST</TpoMoneda><MntExe>196043.76</MntExe><MntTotal>196043.76</MntTotal></Totales>"), "{xml}");
    assert!(xml.contains("<MNT>196043.76</MNT>"));
    assert!(between(&xml, "<Aduana>", "</Aduana>").starts_with("<CodModVenta>4</CodModVenta><CodClauVenta>2</CodClauVenta><TotClauVenta>4702.98</TotClauVenta><CodViaTransp>1</CodViaTransp><CodPtoEmbarque>906</CodPtoEmbarque><CodPtoDesemb>563</CodPtoDesemb><CodUnidMedTara>17</CodUnidMedTara><CodUnidPesoBruto>9</CodUnidPesoBruto>"));

    let hotel = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 110, "FchEmis": FECHA, "IndServicio": 4},
            "Receptor": {"RUTRecep": "55555555-5", "RznSocRecep": "Lucía Fernández", "Extranjero": {"NumId": "PAS-X1234567", "Nacionalidad": 517}},
            "Totales": {"TpoMoneda": "DOLAR USA"},
            "OtraMoneda": {"TpoMoneda": "PESO CL", "TpoCambio": 944.15}
        },
        "Detalle": {"NmbItem": "ALOJAMIENTO HABITACIONES", "PrcItem": 235},
        "Referencia": set("493308-3")
    });
    let (c, xml) = built(dir.path(), "493308-3", &hotel, 4);
    // 235 USD; in pesos 235 × 944,15 = 221 875,25 → 221 875.
    assert!(xml.contains("<Totales><TpoMoneda>DOLAR USA</TpoMoneda><MntExe>235</MntExe><MntTotal>235</MntTotal></Totales><OtraMoneda><TpoMoneda>PESO CL</TpoMoneda><TpoCambio>944.15</TpoCambio><MntExeOtrMnda>221875</MntExeOtrMnda><MntTotOtrMnda>221875</MntTotOtrMnda></OtraMoneda>"), "{xml}");
    assert!(!xml.contains("<Transporte>"));
    envio_validates(dir.path(), &[a, b, c]);
}

/// Amounts with decimals in the operation currency stay exact to 4 decimals; OtraMoneda in
/// another foreign currency keeps 4 decimals too.
#[test]
fn four_decimals_in_the_operation_currency_and_in_another_foreign_currency() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 110, "FchEmis": FECHA, "IndServicio": 3},
            "Receptor": receptor_au(),
            "Totales": {"TpoMoneda": "DOLAR USA"},
            "OtraMoneda": {"TpoMoneda": "EURO", "TpoCambio": 0.9271}
        },
        "Detalle": [{"NmbItem": "Consultoría", "QtyItem": 3, "PrcItem": 33.3333},
                    {"NmbItem": "Soporte", "QtyItem": 0.5, "PrcItem": 10.00005}]
    });
    let (_, xml) = built(dir.path(), "decimales", &doc, 5);
    // 3 × 33,3333 = 99,9999; 0,5 × 10,00005 = 5,000025 → 5,0000 (4 decimals, half away from zero
    // gives 5,0000 since the fifth decimal is 2). Total 104,9999 USD.
    // In euros: 104,9999 × 0,9271 = 97,34540729 → 97,3454.
    assert!(xml.contains("<MontoItem>99.9999</MontoItem>") && xml.contains("<MontoItem>5</MontoItem>"), "{xml}");
    assert!(xml.contains("<MntTotal>104.9999</MntTotal></Totales><OtraMoneda><TpoMoneda>EURO</TpoMoneda><TpoCambio>0.9271</TpoCambio><MntExeOtrMnda>97.3454</MntExeOtrMnda><MntTotOtrMnda>97.3454</MntTotOtrMnda>"), "{xml}");
}

#[test]
fn bad_export_input_names_its_field_and_takes_no_folio() {
    let dir = tempfile::tempdir().unwrap();
    let base = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 110, "FchEmis": FECHA},
            "Receptor": receptor_au(),
            "Totales": {"TpoMoneda": "EURO"}
        },
        "Detalle": [{"NmbItem": "CHATARRA", "QtyItem": 1, "PrcItem": 10}]
    });
    let with = |path: &[&str], v: Value| {
        let mut d = base.clone();
        let mut at = &mut d;
        for k in &path[..path.len() - 1] {
            at = at.as_object_mut().unwrap().entry(k.to_string()).or_insert(json!({}));
        }
        at[path[path.len() - 1]] = v;
        d
    };
    let cases = [
        ("moneda", with(&["Encabezado", "Totales", "TpoMoneda"], json!("BITCOIN")), "Encabezado.Totales.TpoMoneda"),
        ("sin-moneda", with(&["Encabezado", "Totales"], json!({})), "Encabezado.Totales.TpoMoneda"),
        (
            "puerto",
            with(&["Encabezado", "Transporte", "Aduana"], json!({"CodPtoEmbarque": 9999})),
            "Encabezado.Transporte.Aduana.CodPtoEmbarque",
        ),
        (
            "pais",
            with(&["Encabezado", "Transporte", "Aduana"], json!({"CodPaisDestin": "ATLANTIS"})),
            "Encabezado.Transporte.Aduana.CodPaisDestin",
        ),
        (
            "nacionalidad",
            with(&["Encabezado", "Receptor", "Extranjero"], json!({"Nacionalidad": "7"})),
            "Encabezado.Receptor.Extranjero.Nacionalidad",
        ),
        (
            "cinco-decimales",
            with(&["Encabezado", "Transporte", "Aduana"], json!({"MntFlete": 1.23456})),
            "Encabezado.Transporte.Aduana.MntFlete",
        ),
        (
            "cambio-cinco-decimales",
            with(&["Encabezado", "OtraMoneda"], json!({"TpoMoneda": "PESO CL", "TpoCambio": 950.12345})),
            "Encabezado.OtraMoneda.TpoCambio",
        ),
        (
            "sin-cambio",
            with(&["Encabezado", "OtraMoneda"], json!({"TpoMoneda": "PESO CL"})),
            "Encabezado.OtraMoneda.TpoCambio",
        ),
        ("con-iva", with(&["Encabezado", "Totales", "IVA"], json!(190)), "Encabezado.Totales.IVA"),
        ("con-neto", with(&["Encabezado", "Totales", "MntNeto"], json!(10)), "Encabezado.Totales.MntNeto"),
        (
            "impuesto",
            with(&["Detalle"], json!([{"NmbItem": "x", "PrcItem": 1, "CodImpAdic": 27}])),
            "Detalle[0].CodImpAdic",
        ),
        ("forma-pago", with(&["Encabezado", "IdDoc", "FmaPagExp"], json!(99)), "Encabezado.IdDoc.FmaPagExp"),
        ("servicio", with(&["Encabezado", "IdDoc", "IndServicio"], json!(1)), "Encabezado.IdDoc.IndServicio"),
        (
            "bultos",
            with(&["Encabezado", "Transporte", "Aduana"], json!({"TipoBultos": {"CodTpoBultos": "BARRILITOS"}})),
            "Encabezado.Transporte.Aduana.TipoBultos[0].CodTpoBultos",
        ),
        ("total", with(&["Encabezado", "Totales", "MntTotal"], json!(10.00001)), "Encabezado.Totales.MntTotal"),
    ];
    for (name, input, field) in cases {
        refused(dir.path(), name, &input, field);
    }
    // A 112 without a reference to what it corrects.
    let mut nc = base.clone();
    nc["Encabezado"]["IdDoc"]["TipoDTE"] = json!(112);
    refused(dir.path(), "nc-sin-ref", &nc, "Referencia");
    // Export data on a factura.
    let mut f = base.clone();
    f["Encabezado"]["IdDoc"]["TipoDTE"] = json!(33);
    f["Encabezado"]["Receptor"] = json!({"RUTRecep": "76555835-2", "RznSocRecep": "Ñandú Ltda."});
    refused(dir.path(), "factura-con-moneda", &f, "Encabezado.Totales.TpoMoneda");
}

/// Over the API, against the SII simulator: the examples' 110 and 112 are issued, stored, sent in
/// an EnvioDTE and accepted; a quote gives the totals in the operation currency and in pesos; a
/// bad export is 422 naming its field and takes no folio.
#[tokio::test]
async fn exports_are_issued_sent_and_accepted_over_the_api() {
    use common::gateway::{Gateway, RUT};
    use common::sim::SimProcess;
    use reqwest::StatusCode;
    use std::time::Duration;

    let sim = SimProcess::start(&[]);
    let env = [
        ("DTE_GATEWAY_SII_WORKERS", "true"),
        ("DTE_GATEWAY_SII_URL_CERTIFICACION", sim.base.as_str()),
        ("DTE_GATEWAY_WORKER_INTERVAL_MS", "100"),
        ("DTE_GATEWAY_SENDER_MAX_AGE_MS", "200"),
        ("DTE_GATEWAY_TRACK_EVERY_MS", "200"),
    ];
    let g = Gateway::start(common::server::sqlite(), 1, &env, 10).await;
    for tipo in [110, 112] {
        let (s, b) = g.add_caf(RUT, tipo, 1, 10).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let read = |t: u16| -> Value { serde_json::from_slice(&std::fs::read(example(t)).unwrap()).unwrap() };

    let (s, q) = g.send("POST", "/v1/tax/quote", &g.key, Some(read(110))).await;
    // 2 400 × 12,35 = 29 640, less 2 % whole (592,8 → 593) = 29 047; 800 × 8,9 = 7 120;
    // 36 167 EUR, and 36 167 × 1 021,53 = 36 945 675,51 → 36 945 676 pesos.
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!((q["TpoMoneda"].as_str(), q["MntTotal"].as_f64()), (Some("EURO"), Some(36167.0)), "{q}");
    assert_eq!(q["OtraMoneda"]["MntTotOtrMnda"].as_f64(), Some(36945676.0), "{q}");

    let mut bad = read(110);
    bad["Encabezado"]["Transporte"]["Aduana"]["CodPtoDesemb"] = json!("ATLANTIDA");
    let (s, p) = g.issue(0, &bad, None).await;
    assert_eq!((s, p["type"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/invalid-document")), "{p}");
    assert_eq!(p["errors"][0]["path"], "Encabezado.Transporte.Aduana.CodPtoDesemb", "{p}");

    let (s, f) = g.issue(0, &read(110), None).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["folio"], 1, "the refused document took no folio: {f}");
    let (s, n) = g.issue(0, &read(112), None).await;
    assert_eq!((s, n["folio"].as_u64()), (StatusCode::CREATED, Some(1)), "{n}");
    common::wait_for("the SII's verdicts", Duration::from_secs(60), async || {
        let states = g.states(RUT, &g.key).await;
        (states.get("accepted") == Some(&2)).then_some(())
    })
    .await;
    let (s, xml) = g.raw("GET", &format!("/v1/companies/{RUT}/documents/110/1/xml"), &g.key, vec![], "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(xml.as_str().is_some_and(|x| x.contains("<Exportaciones ID=\"F1T110\">")), "{xml}");
}

fn built_documento(dir: &Path, name: &str, input: &Value) -> String {
    build_verified(dir, name, input, 3).1
}

fn receptor_cl() -> Value {
    json!({"RUTRecep": "76555835-2", "RznSocRecep": "Ñandú & Cía. Limitada", "GiroRecep": "Comercio",
           "DirRecep": "Los Aromos 45", "CmnaRecep": "Ñuñoa"})
}

/// A factura priced in dollars: computed in dollars to 4 decimals and in whole pesos, each peso
/// price being the dollar price × the rate; and a factura exenta in pesos shown in euros.
#[test]
fn facturas_in_another_currency() {
    let dir = tempfile::tempdir().unwrap();
    let usd = json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 33, "FchEmis": FECHA}, "Receptor": receptor_cl(),
                       "OtraMoneda": {"TpoMoneda": "DOLAR USA", "TpoCambio": 943.27}},
        "Detalle": [
            {"NmbItem": "Licencia anual", "QtyItem": 3, "OtrMnda": {"PrcOtrMon": 120.5}, "DescuentoPct": 10},
            {"NmbItem": "Soporte", "QtyItem": 7.5, "OtrMnda": {"PrcOtrMon": 33.3333}},
            {"NmbItem": "Pisco", "QtyItem": 2, "OtrMnda": {"PrcOtrMon": 9.99, "MontoItemOtrMnda": 19.98}, "CodImpAdic": 24}
        ]
    });
    let xml = built_documento(dir.path(), "33-usd", &usd);
    // In dollars: 3 × 120,5 = 361,5 − 10 % (36,15) = 325,35; 7,5 × 33,3333 = 249,99975 → 249,9998;
    // 2 × 9,99 = 19,98. Neto 595,3298; IVA 19 % = 113,112662 → 113,1127; licores 31,5 % of
    // 19,98 = 6,2937; total 595,3298 + 113,1127 + 6,2937 = 714,7362.
    // In pesos, each price × 943,27: 113 664,035 × 3 = 340 992,105 → 340 992, − 10 % (34 099,2 →
    // 34 099) = 306 893; 31 442,301891 × 7,5 = 235 817,26… → 235 817; 9 423,2673 × 2 =
    // 18 846,5346 → 18 847. Neto 561 557; IVA 106 695,83 → 106 696; licores 31,5 % of 18 847 =
    // 5 936,805 → 5 937; total 561 557 + 106 696 + 5 937 = 674 190.
    assert!(xml.contains("<Totales><MntNeto>561557</MntNeto><TasaIVA>19</TasaIVA><IVA>106696</IVA><ImptoReten><TipoImp>24</TipoImp><TasaImp>31.5</TasaImp><MontoImp>5937</MontoImp></ImptoReten><MntTotal>674190</MntTotal></Totales>"), "{xml}");
    assert!(xml.contains("<OtraMoneda><TpoMoneda>DOLAR USA</TpoMoneda><TpoCambio>943.27</TpoCambio><MntNetoOtrMnda>595.3298</MntNetoOtrMnda><IVAOtrMnda>113.1127</IVAOtrMnda><ImpRetOtrMnda><TipoImpOtrMnda>24</TipoImpOtrMnda><TasaImpOtrMnda>31.5</TasaImpOtrMnda><VlrImpOtrMnda>6.2937</VlrImpOtrMnda></ImpRetOtrMnda><MntTotOtrMnda>714.7362</MntTotOtrMnda></OtraMoneda>"), "{xml}");
    assert!(xml.contains("<QtyItem>3</QtyItem><PrcItem>113664.035</PrcItem><OtrMnda><PrcOtrMon>120.5</PrcOtrMon><Moneda>USD</Moneda><FctConv>943.27</FctConv><DctoOtrMnda>36.15</DctoOtrMnda><MontoItemOtrMnda>325.35</MontoItemOtrMnda></OtrMnda><DescuentoPct>10</DescuentoPct><DescuentoMonto>34099</DescuentoMonto><MontoItem>306893</MontoItem>"), "{xml}");
    assert!(xml.contains("<MontoItemOtrMnda>249.9998</MontoItemOtrMnda></OtrMnda><MontoItem>235817</MontoItem>"));

    let eur = json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 34, "FchEmis": FECHA}, "Receptor": receptor_cl(),
                       "OtraMoneda": {"TpoMoneda": "EURO", "TpoCambio": 1021.53}},
        "Detalle": {"NmbItem": "Curso", "PrcItem": 150000}
    });
    let xml = built_documento(dir.path(), "34-eur", &eur);
    // 150 000 pesos / 1 021,53 = 146,83856… → 146,8386 euros.
    assert!(xml.contains("<Totales><MntExe>150000</MntExe><MntTotal>150000</MntTotal></Totales><OtraMoneda><TpoMoneda>EURO</TpoMoneda><TpoCambio>1021.53</TpoCambio><MntExeOtrMnda>146.8386</MntExeOtrMnda><MntTotOtrMnda>146.8386</MntTotOtrMnda></OtraMoneda>"), "{xml}");

    let cases = [
        (
            "boleta",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 39}, "OtraMoneda": {"TpoMoneda": "EURO", "TpoCambio": 1000}},
                          "Detalle": {"NmbItem": "x", "PrcItem": 100}}),
            "Encabezado.OtraMoneda",
        ),
        (
            "moneda",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl(), "OtraMoneda": {"TpoMoneda": "DOBLON", "TpoCambio": 1000}},
                          "Detalle": {"NmbItem": "x", "PrcItem": 100}}),
            "Encabezado.OtraMoneda.TpoMoneda",
        ),
        (
            "sin-otra-moneda",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl()},
                          "Detalle": {"NmbItem": "x", "OtrMnda": {"PrcOtrMon": 1}}}),
            "Detalle[0].OtrMnda",
        ),
        (
            "dos-precios",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl(), "OtraMoneda": {"TpoMoneda": "EURO", "TpoCambio": 1000}},
                          "Detalle": {"NmbItem": "x", "PrcItem": 100, "OtrMnda": {"PrcOtrMon": 1}}}),
            "Detalle[0].PrcItem",
        ),
        (
            "mezcla",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl(), "OtraMoneda": {"TpoMoneda": "EURO", "TpoCambio": 1000}},
                          "Detalle": [{"NmbItem": "x", "OtrMnda": {"PrcOtrMon": 1}}, {"NmbItem": "y", "PrcItem": 5}]}),
            "Detalle[1].OtrMnda",
        ),
        (
            "siete-decimales",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl(), "OtraMoneda": {"TpoMoneda": "EURO", "TpoCambio": 1000}},
                          "Detalle": {"NmbItem": "x", "OtrMnda": {"PrcOtrMon": 1.1234567}}}),
            "Detalle[0].OtrMnda.PrcOtrMon",
        ),
        (
            "monto-otra",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl(), "OtraMoneda": {"TpoMoneda": "EURO", "TpoCambio": 1000}},
                          "Detalle": {"NmbItem": "x", "QtyItem": 2, "OtrMnda": {"PrcOtrMon": 1.5, "MontoItemOtrMnda": 3.1}}}),
            "Detalle[0].OtrMnda.MontoItemOtrMnda",
        ),
    ];
    for (name, input, field) in cases {
        refused(dir.path(), name, &input, field);
    }
}

/// What a review found: each of these inputs once crashed the process, failed the schema after
/// the rules, or was refused although valid.
#[test]
fn inputs_found_in_review_are_refused_by_field_or_built() {
    let dir = tempfile::tempdir().unwrap();
    let export = |detalle: Value| {
        json!({"Encabezado": {"IdDoc": {"TipoDTE": 110, "FchEmis": FECHA, "IndServicio": 3}, "Receptor": receptor_au(),
                              "Totales": {"TpoMoneda": "DOLAR USA"}},
               "Detalle": detalle})
    };
    // A declared line amount with 4 decimals is an export's; a price-less 112 line states it.
    let (_, xml) = built(
        dir.path(),
        "monto-4",
        &export(json!({"NmbItem": "x", "QtyItem": 3, "PrcItem": 10.25, "MontoItem": 30.75})),
        6,
    );
    assert!(xml.contains("<MontoItem>30.75</MontoItem>"), "{xml}");
    let cases = [
        // Overflowing a Decimal once panicked.
        (
            "overflow",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl(),
                "OtraMoneda": {"TpoMoneda": "DOLAR USA", "TpoCambio": 100000000000000000000_u128}},
                "Detalle": {"NmbItem": "x", "OtrMnda": {"PrcOtrMon": 10000000000_u64}}}),
            "Encabezado.OtraMoneda.TpoCambio",
        ),
        // Export-only elements on a factura.
        (
            "id-adic-recep",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": {"RUTRecep": "76555835-2", "RznSocRecep": "x",
                "Extranjero": {"IdAdicRecep": "X-1"}}}, "Detalle": {"NmbItem": "x", "PrcItem": 1000}}),
            "Encabezado.Receptor.Extranjero.IdAdicRecep",
        ),
        (
            "id-adic-otr",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl()}, "Detalle": {"NmbItem": "x", "PrcItem": 1000},
                "Referencia": {"TpoDocRef": 801, "FolioRef": 7, "FchRef": FECHA, "IdAdicOtr": "X-1"}}),
            "Referencia[0].IdAdicOtr",
        ),
        // Beyond an export's 14 integer digits.
        ("catorce", export(json!({"NmbItem": "x", "QtyItem": 1000000, "PrcItem": 1000000000})), "Detalle[0].MontoItem"),
        // A whole-unit discount that rounds to nothing: stated and not applied, once.
        (
            "descuento-cero",
            export(json!({"NmbItem": "x", "PrcItem": 30, "DescuentoPct": 1})),
            "Detalle[0].DescuentoPct",
        ),
        // A tax that rounds to 0 pesos (MntImpType is positive).
        (
            "impuesto-cero",
            json!({"Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": receptor_cl()},
                "Detalle": {"NmbItem": "x", "PrcItem": 3, "CodImpAdic": 27}}),
            "Detalle[0].CodImpAdic",
        ),
    ];
    for (name, input, field) in cases {
        refused(dir.path(), name, &input, field);
    }
    // CredEC in pesos on a factura priced in dollars: the dollars carry no CredEC.
    let cred = json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 33, "FchEmis": FECHA}, "Receptor": receptor_cl(),
                       "Totales": {"CredEC": 1000},
                       "OtraMoneda": {"TpoMoneda": "DOLAR USA", "TpoCambio": 950}},
        "Detalle": {"NmbItem": "Obra", "OtrMnda": {"PrcOtrMon": 100}}
    });
    let xml = built_documento(dir.path(), "cred-usd", &cred);
    // 100 × 950 = 95 000 neto, IVA 18 050, CredEC 1 000: 112 050. Dollars: 100 + 19 = 119.
    assert!(xml.contains("<CredEC>1000</CredEC><MntTotal>112050</MntTotal>"), "{xml}");
    assert!(xml.contains("<MntTotOtrMnda>119</MntTotOtrMnda>"), "{xml}");
}
