//! The printed document, checked by tools the project did not write: pages rasterised by
//! `pdftoppm`, the timbre decoded by zxing-cpp, text read by `pdftotext`, files checked by `qpdf`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use common::{build, caf, example, repo, text};

const TYPES: [u16; 8] = [33, 34, 39, 41, 46, 52, 56, 61];
/// Raster resolution of the checks: 300 dpi, so 1 cm is 118.1 pixels.
const DPI: f64 = 300.0;
const PX_PER_CM: f64 = DPI / 2.54;

fn run(c: &mut Command) -> std::process::Output {
    c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"))
}

fn build_ok(dir: &Path, input: &Path, tipo: u16, folio: u64) -> PathBuf {
    let out = dir.join(format!("{tipo}-{folio}.xml"));
    let o = build(input, &caf(tipo), folio, &out, &[]);
    assert!(o.status.success(), "build {tipo}: {}", text(&o));
    out
}

fn pdf_cmd(xml: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = common::bin();
    c.args(["dte", "pdf", "--input"]).arg(xml);
    c.arg("--company").arg(repo("examples/company.json"));
    c.arg("--trust-test-authority").arg(repo("certs/test-authority.pem"));
    c.arg("--output").arg(out);
    c.args(extra);
    run(&mut c)
}

fn pdf_ok(xml: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let o = pdf_cmd(xml, out, extra);
    assert!(o.status.success(), "dte pdf {extra:?}: {}", text(&o));
    qpdf_ok(out);
    out.to_path_buf()
}

fn qpdf_ok(pdf: &Path) {
    let o = run(Command::new("qpdf").arg("--check").arg(pdf));
    assert!(o.status.success(), "qpdf --check {}: {}", pdf.display(), text(&o));
}

fn pdftotext(pdf: &Path, page: Option<usize>) -> String {
    let mut c = Command::new("pdftotext");
    c.args(["-layout", "-enc", "UTF-8"]);
    if let Some(p) = page {
        c.args(["-f", &p.to_string(), "-l", &p.to_string()]);
    }
    let o = run(c.arg(pdf).arg("-"));
    assert!(o.status.success(), "pdftotext: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn pages(pdf: &Path) -> usize {
    let o = run(Command::new("pdfinfo").arg(pdf));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo Pages")
}

/// Rasterises `page` at 300 dpi (8-bit gray) and decodes its PDF417 symbols with zxing-cpp.
fn timbres(pdf: &Path, page: usize) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("p");
    let o = run(Command::new("pdftoppm")
        .args(["-r", "300", "-gray", "-singlefile", "-f", &page.to_string(), "-l", &page.to_string()])
        .arg(pdf)
        .arg(&prefix));
    assert!(o.status.success(), "pdftoppm: {}", text(&o));
    let o = run(Command::new("python3").arg(repo("tests/tools/read_pdf417.py")).arg(prefix.with_extension("pgm")));
    assert!(o.status.success(), "read_pdf417: {}", text(&o));
    serde_json::from_slice(&o.stdout).expect("decoder output")
}

/// The TED cut from the signed XML's bytes (ISO-8859-1, as signed).
fn ted_of(xml: &Path) -> Vec<u8> {
    let b = std::fs::read(xml).unwrap();
    let start = b.windows(4).position(|w| w == b"<TED").expect("TED");
    let end = b.windows(6).position(|w| w == b"</TED>").expect("/TED") + 6;
    b[start..end].to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A factura whose razón social and items carry Ñ, accents, `&`, `<` and `°`, short enough for the
/// test authority's larger CAF signature to leave the TED within level 5's capacity.
fn accented(dir: &Path) -> PathBuf {
    let doc = json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 33},
            "Receptor": {"RUTRecep": "76555835-2", "RznSocRecep": "Ñandú & Cía", "GiroRecep": "Comercio",
                         "DirRecep": "Los Aromos 45", "CmnaRecep": "Ñuñoa"}
        },
        "Detalle": [
            {"NmbItem": "Café <°> Ñ", "QtyItem": 2, "PrcItem": 1500},
            {"NmbItem": "Té & azúcar", "QtyItem": 1, "PrcItem": 990}
        ]
    });
    let input = dir.join("accented.json");
    std::fs::write(&input, doc.to_string()).unwrap();
    build_ok(dir, &input, 33, 41)
}

#[test]
fn the_timbre_decodes_to_the_signed_ted_at_level_5_within_the_sii_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let xml = accented(dir.path());
    let ted = ted_of(&xml);
    assert!(ted.contains(&0xD1), "the TED carries Ñ in ISO-8859-1");

    // Letter.
    let letter = pdf_ok(&xml, &dir.path().join("letter.pdf"), &[]);
    let found = timbres(&letter, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    let t = &found[0];
    assert_eq!(t["bytes"], hex(&ted), "decoded bytes differ from the TED");
    let (x_min, x_max) = (t["x_min"].as_f64().unwrap(), t["x_max"].as_f64().unwrap());
    let (y_min, y_max) = (t["y_min"].as_f64().unwrap(), t["y_max"].as_f64().unwrap());
    let (w_cm, h_cm) = ((x_max - x_min) / PX_PER_CM, (y_max - y_min) / PX_PER_CM);
    assert!(x_min / PX_PER_CM >= 2.0, "{:.2} cm from the left edge", x_min / PX_PER_CM);
    assert!((5.0..=9.0).contains(&w_cm) && (2.0..=4.0).contains(&h_cm), "{w_cm:.2} × {h_cm:.2} cm");
    assert!(y_min > t["image_height"].as_f64().unwrap() / 2.0, "the timbre is in the lower half");
    // zxing-cpp reports the correction as the share of error-correction codewords in the symbol.
    // Byte compaction puts 6 bytes in 5 codewords, plus the length and mode codewords, and a
    // symbol pads its last row (at most a row of columns): level 5's 64 codewords give a share in
    // a narrow band, level 4's 32 or level 6's 128 far from it.
    let n = ted.len();
    let data = 2 + (n / 6) * 5 + n % 6;
    let pct: f64 = t["ec_level"].as_str().unwrap().trim_end_matches('%').parse().unwrap();
    let (lo, hi) = (6400.0 / (data + 64 + 30) as f64, 6400.0 / (data + 64) as f64);
    assert!(pct >= lo.floor() - 1.0 && pct <= hi.ceil(), "reported {pct}%, level 5 is {lo:.1}–{hi:.1}% for {n} bytes");
    let page = pdftotext(&letter, None);
    for caption in ["Timbre Electrónico SII", "Res. 80 de 2014", "Verifique documento: www.sii.cl"] {
        assert!(page.contains(caption), "{caption} missing:\n{page}");
    }

    // 80 mm: at least 2 × 4.5 cm and inside the roll's width.
    let roll = pdf_ok(&xml, &dir.path().join("80mm.pdf"), &["--format", "80mm"]);
    let found = timbres(&roll, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    let t = &found[0];
    assert_eq!(t["bytes"], hex(&ted));
    let w_cm = (t["x_max"].as_f64().unwrap() - t["x_min"].as_f64().unwrap()) / PX_PER_CM;
    let h_cm = (t["y_max"].as_f64().unwrap() - t["y_min"].as_f64().unwrap()) / PX_PER_CM;
    let page_cm = t["image_width"].as_f64().unwrap() / PX_PER_CM;
    assert!(w_cm >= 4.5 && h_cm >= 2.0, "{w_cm:.2} × {h_cm:.2} cm");
    assert!(
        (page_cm - 8.0).abs() < 0.05
            && t["x_min"].as_f64().unwrap() > 0.0
            && t["x_max"].as_f64().unwrap() < t["image_width"].as_f64().unwrap()
    );
    assert!(pdftotext(&roll, None).contains("Timbre Electrónico SII"));

    // Deterministic: the same file and options give the same bytes.
    let again = pdf_ok(&xml, &dir.path().join("again.pdf"), &[]);
    assert_eq!(std::fs::read(&letter).unwrap(), std::fs::read(&again).unwrap());
}

fn xml_values(xml: &Path, tag: &str) -> Vec<String> {
    let s: String = std::fs::read(xml).unwrap().iter().map(|&b| b as char).collect();
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    s.split(&open)
        .skip(1)
        .filter_map(|p| p.split(&close).next())
        .map(|v| v.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        .collect()
}

fn chilean(n: &str) -> String {
    let digits: Vec<char> = n.chars().collect();
    let mut out = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(*c);
    }
    out
}

#[test]
fn every_type_prints_its_name_folio_ruts_lines_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        (33, "FACTURA ELECTRÓNICA"),
        (34, "FACTURA NO AFECTA O EXENTA ELECTRÓNICA"),
        (39, "BOLETA ELECTRÓNICA"),
        (41, "BOLETA NO AFECTA O EXENTA ELECTRÓNICA"),
        (46, "FACTURA DE COMPRA ELECTRÓNICA"),
        (52, "GUÍA DE DESPACHO ELECTRÓNICA"),
        (56, "NOTA DE DÉBITO ELECTRÓNICA"),
        (61, "NOTA DE CRÉDITO ELECTRÓNICA"),
    ];
    for (tipo, name) in names {
        assert!(TYPES.contains(&tipo));
        let xml = build_ok(dir.path(), &example(tipo), tipo, 5);
        let pdf = pdf_ok(&xml, &dir.path().join(format!("{tipo}.pdf")), &[]);
        let size = std::fs::metadata(&pdf).unwrap().len();
        assert!(size < 100 * 1024, "T{tipo}: {size} bytes");
        let page = pdftotext(&pdf, None);
        // Words, not layout: the document box may wrap a long name.
        let flat = page.split_whitespace().collect::<Vec<_>>().join(" ");
        for word in name.split(' ') {
            assert!(flat.contains(word), "T{tipo}: {word} of {name} missing:\n{page}");
        }
        assert!(flat.contains("N° 5"), "T{tipo}: folio missing:\n{page}");
        assert!(flat.contains("76.192.083-9"), "T{tipo}: emisor RUT missing");
        if let Some(r) = xml_values(&xml, "RUTRecep").first().filter(|r| r.as_str() != "66666666-6") {
            let (n, dv) = r.split_once('-').unwrap();
            assert!(flat.contains(&format!("{}-{dv}", chilean(n))), "T{tipo}: receptor RUT {r} missing");
        }
        for item in xml_values(&xml, "NmbItem") {
            let first = item.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
            assert!(flat.contains(&first), "T{tipo}: line {item:?} missing:\n{page}");
        }
        for tag in ["MntNeto", "MntExe", "IVA", "MntTotal"] {
            for v in xml_values(&xml, tag) {
                assert!(flat.contains(&format!("$ {}", chilean(&v))), "T{tipo}: {tag} {v} missing:\n{page}");
            }
        }
        // Every total of the 80 mm copy too.
        let roll = pdf_ok(&xml, &dir.path().join(format!("{tipo}-80.pdf")), &["--format", "80mm"]);
        let flat80 = pdftotext(&roll, None).split_whitespace().collect::<Vec<_>>().join(" ");
        for v in xml_values(&xml, "MntTotal") {
            assert!(flat80.contains(&format!("$ {}", chilean(&v))), "T{tipo} 80 mm: total missing");
        }
    }
}

#[test]
fn the_cedible_copy_has_its_block_and_only_where_the_sii_has_one() {
    let dir = tempfile::tempdir().unwrap();
    for (tipo, legend) in [(33, "CEDIBLE"), (52, "CEDIBLE CON SU FACTURA")] {
        let xml = build_ok(dir.path(), &example(tipo), tipo, 9);
        for format in ["letter", "80mm"] {
            let pdf =
                pdf_ok(&xml, &dir.path().join(format!("{tipo}-{format}.pdf")), &["--cedible", "--format", format]);
            let flat = pdftotext(&pdf, None).split_whitespace().collect::<Vec<_>>().join(" ");
            for needle in
                [legend, "Nombre:", "R.U.T.:", "Fecha:", "Recinto:", "Firma:", "Ley 19.983", "acuse de recibo"]
            {
                assert!(flat.contains(needle), "T{tipo} {format}: {needle} missing:\n{flat}");
            }
            assert!(!timbres(&pdf, 1).is_empty(), "T{tipo} {format}: the timbre does not decode");
        }
    }
    let xml = build_ok(dir.path(), &example(61), 61, 9);
    let o = pdf_cmd(&xml, &dir.path().join("61.pdf"), &["--cedible"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cedible"), "{}", text(&o));
}

#[test]
fn a_sixty_line_factura_spans_pages_with_the_timbre_and_totals_on_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Value> = (1..=60)
        .map(|i| json!({"NmbItem": format!("Artículo número {i} de la lista"), "DscItem": "Una descripción que ocupa una segunda línea", "QtyItem": i, "PrcItem": 1000 + i}))
        .collect();
    let doc = json!({
        "Encabezado": {"IdDoc": {"TipoDTE": 33}, "Receptor": {"RUTRecep": "76555835-2", "RznSocRecep": "Cliente", "GiroRecep": "Comercio", "DirRecep": "Calle 1", "CmnaRecep": "Santiago"}},
        "Detalle": lines
    });
    let input = dir.path().join("long.json");
    std::fs::write(&input, doc.to_string()).unwrap();
    let xml = build_ok(dir.path(), &input, 33, 77);
    let pdf = pdf_ok(&xml, &dir.path().join("long.pdf"), &[]);
    let n = pages(&pdf);
    assert!(n >= 2, "{n} page(s)");
    for p in 1..=n {
        let page = pdftotext(&pdf, Some(p));
        let last = p == n;
        assert_eq!(page.contains("Timbre Electrónico SII"), last, "page {p} of {n}");
        assert_eq!(page.contains("TOTAL"), last, "page {p} of {n}");
        assert!(page.contains(&format!("Página {p} de {n}")), "page {p}");
        assert_eq!(timbres(&pdf, p).len(), usize::from(last), "page {p}");
    }
    let all = pdftotext(&pdf, None);
    for i in [1, 30, 60] {
        assert!(all.contains(&format!("Artículo número {i} de la lista")), "line {i} missing");
    }
}

#[test]
fn bad_input_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pdf");
    let refused = |args: (&Path, &[&str]), words: &str| {
        let o = pdf_cmd(args.0, &out, args.1);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(words), "expected {words:?}: {}", text(&o));
    };
    let not_dte = dir.path().join("a.xml");
    std::fs::write(&not_dte, "<?xml version=\"1.0\"?><Factura/>").unwrap();
    refused((&not_dte, &[]), "not a DTE");

    let xml = build_ok(dir.path(), &example(33), 33, 3);
    // Tampered after signing: the amount no longer matches the signature.
    let tampered = dir.path().join("tampered.xml");
    let s: Vec<u8> = std::fs::read(&xml).unwrap();
    let s = String::from_utf8_lossy(&s).replace("<MntTotal>1559588</MntTotal>", "<MntTotal>1</MntTotal>");
    std::fs::write(&tampered, s.as_bytes()).unwrap();
    refused((&tampered, &[]), "does not verify");
    let forced = pdf_ok(&tampered, &dir.path().join("forced.pdf"), &["--force"]);
    // Drawn across the page at an angle: read in content order.
    let o = run(Command::new("pdftotext").args(["-raw", "-enc", "UTF-8"]).arg(&forced).arg("-"));
    let words = String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("NO VÁLIDO"), "{words}");

    let junk = dir.path().join("logo.png");
    std::fs::write(&junk, b"this is not an image").unwrap();
    refused((&xml, &["--logo", junk.to_str().unwrap()]), "logo");
    let big = dir.path().join("big.png");
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.resize(600 * 1024, 0);
    std::fs::write(&big, b).unwrap();
    refused((&xml, &["--logo", big.to_str().unwrap()]), "524288 bytes");
    refused((&xml, &["--format", "a4"]), "format");

    // An envelope: the DTE is chosen by its folio.
    let env = dir.path().join("envio.xml");
    let mut c = common::bin();
    c.args(["envio", "build", "--company"]).arg(repo("examples/company.json"));
    c.arg("--cert").arg(repo("certs/test-company.p12")).args([
        "--cert-password",
        common::PASS,
        "--timestamp",
        common::TS,
    ]);
    c.arg("--output").arg(&env).arg(&xml);
    let o = run(&mut c);
    assert!(o.status.success(), "{}", text(&o));
    refused((&env, &["--folio", "99"]), "no DTE with folio 99");
    let from_envelope = pdf_ok(&env, &dir.path().join("env.pdf"), &["--folio", "3"]);
    assert!(pdftotext(&from_envelope, None).contains("N° 3"));
}

fn png_logo(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Eight);
        let mut wr = e.write_header().unwrap();
        let data: Vec<u8> = (0..w * h).flat_map(|i| [(i % 251) as u8, 40, 160]).collect();
        wr.write_image_data(&data).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_documents_print_over_http_with_the_company_logo() {
    use common::gateway::{caf_xml, factura, Gateway, RUT};
    use reqwest::StatusCode;
    let g = Gateway::start(common::server::sqlite(), 1, &[], 10).await;
    let (s, b) = g.issue(0, &factura("Café <°> Ñ & cía", 12_990), None).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let folio = b["folio"].as_i64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let get = |path: String, key: String| {
        let (http, url) = (g.http.clone(), g.url(&path));
        async move {
            let r = http.get(url).bearer_auth(key).send().await.unwrap();
            let (s, ct) = (r.status(), r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()));
            (s, ct, r.bytes().await.unwrap().to_vec())
        }
    };
    let base = format!("/v1/companies/{RUT}/documents/33/{folio}");
    let (s, _, xml) = get(format!("{base}/xml"), g.key.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let xml_path = dir.path().join("stored.xml");
    std::fs::write(&xml_path, &xml).unwrap();

    // A read-only key prints; the timbre carries the stored TED.
    let (s, k) = g.send("POST", "/v1/keys", &g.admin, Some(json!({"company": RUT, "scopes": ["read"]}))).await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let reader = k["key"].as_str().unwrap().to_string();
    for format in ["letter", "80mm"] {
        let (s, ct, pdf) = get(format!("{base}/pdf?format={format}"), reader.clone()).await;
        assert_eq!((s, ct.as_deref()), (StatusCode::OK, Some("application/pdf")), "{format}");
        let file = dir.path().join(format!("{format}.pdf"));
        std::fs::write(&file, &pdf).unwrap();
        qpdf_ok(&file);
        let t = timbres(&file, 1);
        assert_eq!(t.len(), 1, "{format}: {t:?}");
        assert_eq!(t[0]["bytes"], hex(&ted_of(&xml_path)), "{format}");
    }
    let (s, ct, body) = get(format!("{base}/pdf?format=a4"), reader.clone()).await;
    assert_eq!(
        (s, ct.as_deref()),
        (StatusCode::BAD_REQUEST, Some("application/problem+json")),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (s, _, _) = get(format!("/v1/companies/{RUT}/documents/33/9999/pdf"), reader.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = get(format!("{base}/pdf?cedible=true"), reader.clone()).await;
    assert_eq!(s, StatusCode::OK);

    // A boleta has no cedible copy.
    let (s, b) = g
        .raw(
            "POST",
            &format!("/v1/companies/{RUT}/cafs"),
            &g.admin,
            caf_xml(39, 1, 10, RUT).into_bytes(),
            "application/xml",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let boleta: Value = serde_json::from_slice(&std::fs::read(example(39)).unwrap()).unwrap();
    let (s, b) = g.send("POST", &format!("/v1/companies/{RUT}/documents"), &g.key, Some(boleta)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _, body) =
        get(format!("/v1/companies/{RUT}/documents/39/{}/pdf?cedible=true", b["folio"]), reader.clone()).await;
    let p: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((s, p["type"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/not-cedible")), "{p}");

    // Logos: checked, admin only, then on every copy.
    let logo = format!("/v1/companies/{RUT}/logo");
    let (s, b) = g.raw("PUT", &logo, &g.admin, b"GIF89a not really".to_vec(), "image/gif").await;
    assert_eq!((s, b["type"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("/problems/bad-logo")), "{b}");
    let (s, _) = g.raw("PUT", &logo, &reader, png_logo(300, 120), "image/png").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = g.raw("PUT", &logo, &g.admin, png_logo(300, 120), "image/png").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["media_type"].as_str(), b["width"].as_u64(), b["height"].as_u64()),
        (Some("image/png"), Some(300), Some(120))
    );
    let (s, c) = g.send("GET", &format!("/v1/companies/{RUT}"), &reader, None).await;
    assert_eq!(
        (s, c["logo"]["width"].as_u64(), c["OficinaSII"].as_str()),
        (StatusCode::OK, Some(300), Some("S.I.I. - SANTIAGO CENTRO")),
        "{c}"
    );
    let (_, _, first) = get(format!("{base}/pdf"), reader.clone()).await;
    let (_, _, second) = get(format!("{base}/pdf"), reader.clone()).await;
    assert_eq!(first, second, "the same document and options give the same bytes");
    let file = dir.path().join("logo.pdf");
    std::fs::write(&file, &first).unwrap();
    let o = run(Command::new("pdfimages").arg("-list").arg(&file));
    let listed = String::from_utf8_lossy(&o.stdout);
    assert_eq!(listed.lines().skip(2).count(), 2, "the timbre and the logo: {listed}");
    assert_eq!(timbres(&file, 1).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_results_carry_each_documents_pdf_on_request() {
    use common::gateway::{Gateway, RUT};
    use reqwest::StatusCode;
    use std::io::Read;
    let g = Gateway::start(common::server::sqlite(), 1, &[], 10).await;
    let (s, b) =
        common::batch::submit(&g, &g.admin, common::batch::csv(&[RUT], 3, 2).into_bytes(), "text/csv", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    common::batch::wait_for(&g, &g.admin, &id, std::time::Duration::from_secs(60), |v| v["complete"] == true).await;
    let zip_of = |query: &'static str| {
        let (http, url, key) =
            (g.http.clone(), g.url(&format!("/v1/batches/{id}/results.zip{query}")), g.admin.clone());
        async move {
            let r = http.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.unwrap().to_vec())).unwrap()
        }
    };
    let plain = zip_of("").await;
    let names = |z: &zip::ZipArchive<std::io::Cursor<Vec<u8>>>| -> Vec<String> {
        z.file_names().map(|n| n.unwrap().to_string()).collect()
    };
    assert!(!names(&plain).iter().any(|n| n.ends_with(".pdf")));
    let mut with = zip_of("?pdf=true").await;
    let mut pdfs: Vec<String> = names(&with).into_iter().filter(|n| n.ends_with(".pdf")).collect();
    pdfs.sort();
    assert_eq!(pdfs.len(), 3, "{pdfs:?}");
    let dir = tempfile::tempdir().unwrap();
    for name in &pdfs {
        let mut pdf = Vec::new();
        with.by_name(name).unwrap().read_to_end(&mut pdf).unwrap();
        let mut xml = Vec::new();
        with.by_name(&name.replace(".pdf", ".xml")).unwrap().read_to_end(&mut xml).unwrap();
        let (pf, xf) = (dir.path().join("d.pdf"), dir.path().join("d.xml"));
        std::fs::write(&pf, &pdf).unwrap();
        std::fs::write(&xf, &xml).unwrap();
        qpdf_ok(&pf);
        assert_eq!(timbres(&pf, 1)[0]["bytes"], hex(&ted_of(&xf)), "{name}");
    }
}

/// A factura de exportación prints its name, its customs data with the Aduana's names, its
/// amounts in the operation currency, the total in pesos with its rate, and a timbre that
/// decodes to its TED.
#[test]
fn an_export_prints_its_currency_customs_data_and_timbre() {
    let dir = tempfile::tempdir().unwrap();
    let xml = build_ok(dir.path(), &example(110), 110, 4);
    let pdf = pdf_ok(&xml, &dir.path().join("110.pdf"), &[]);
    qpdf_ok(&pdf);
    let flat = pdftotext(&pdf, None).split_whitespace().collect::<Vec<_>>().join(" ");
    for s in [
        "FACTURA DE EXPORTACIÓN",
        "N° 4",
        "Pago exp.: ANTICIPO",
        "Cláusula: FOB 35.028,5",
        "Embarque: SAN ANTONIO",
        "Desembarque: BARCELONA",
        "Monto exento EURO 36.167",
        "TOTAL EURO 36.167",
        "Tipo de cambio 1.021,53",
        "Total en PESO CL $ 36.945.676",
    ] {
        assert!(flat.contains(s), "{s:?} missing:\n{flat}");
    }
    assert!(!flat.contains("$ 36.167"), "the operation currency is not pesos:\n{flat}");
    let found = timbres(&pdf, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["bytes"], hex(&ted_of(&xml)), "decoded bytes differ from the TED");
}
