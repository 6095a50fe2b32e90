//! Where everything goes on the page, after the SII's Manual de Muestras Impresas: the document box
//! top right in red with the SII office under it, the emisor top left (the logo first), the
//! timbre at the bottom at least 2 cm from the left edge with its captions, the totals beside it,
//! and, on the cedible copy, the acuse de recibo block. Letter pages break long Detalle lists and
//! keep the timbre and totals on the last page; the 80 mm layout is one continuous page.

use super::canvas::{finish, Page, Raster};
use super::fonts::{self, Font};
use super::model::{PrintDoc, PrintError};
use super::names;
use super::timbre::{self, Symbol};
use crate::domain::tax::TaxTable;

pub const PT_PER_MM: f32 = 72.0 / 25.4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Letter,
    Thermal80,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "letter" | "carta" => Ok(Format::Letter),
            "80mm" | "thermal" => Ok(Format::Thermal80),
            other => Err(format!("format {other:?} is not letter or 80mm")),
        }
    }
}

/// What the printed copy needs besides the XML.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub format: Option<Format>,
    pub cedible: bool,
    /// The SII office under the document box ("S.I.I. - SANTIAGO CENTRO").
    pub office: Option<String>,
    /// Number and year of the resolution authorising the emisor (for the document's environment).
    pub resolution: Option<(u32, i32)>,
    pub logo: Option<Raster>,
    /// Stamps "NO VÁLIDO" across every page (a document whose signature or TED did not verify).
    pub not_valid: bool,
}

const RED: [f32; 3] = [0.8, 0.0, 0.0];
const BLACK: [f32; 3] = [0.0, 0.0, 0.0];

/// Renders the document; deterministic for the same document and options.
pub fn render(doc: &PrintDoc, opts: &Options) -> Result<Vec<u8>, PrintError> {
    if opts.cedible && names::cedible_legend(doc.tipo).is_none() {
        return Err(PrintError::NotCedible(doc.tipo));
    }
    let format = opts.format.unwrap_or(Format::Letter);
    let title = format!("{} N° {}", names::document_name(doc.tipo), doc.folio);
    let mut images: Vec<Raster> = Vec::new();
    let (symbol, module) = timbre_for(&doc.ted, format)?;
    images.push(Raster::Bits { width: symbol.width as u32, height: symbol.height as u32, data: symbol.packed_rows() });
    let logo = opts.logo.clone().map(|l| {
        images.push(l);
        images.len() - 1
    });
    let pages = match format {
        Format::Letter => letter(doc, opts, &symbol, module, logo),
        Format::Thermal80 => {
            // One pass to measure the height, one to draw.
            let tall = thermal(doc, opts, &symbol, module, logo, 100_000.0);
            let used = tall.1;
            vec![thermal(doc, opts, &symbol, module, logo, used + 12.0).0]
        }
    };
    Ok(finish(pages, &images, &title))
}

/// Module sizes tried, largest first, each a whole number of device dots: on letter 4, 3 and 2
/// dots at 300 dpi; on 80 mm 2 dots at 203 dpi (the common thermal head).
fn module_sizes(format: Format) -> &'static [f32] {
    match format {
        Format::Letter => &[4.0 * 72.0 / 300.0, 3.0 * 72.0 / 300.0, 2.0 * 72.0 / 300.0],
        Format::Thermal80 => &[2.0 * 72.0 / 203.0],
    }
}

/// Picks the columns and module size: on letter the largest module whose symbol fits the SII's box
/// (2 × 5 cm to 4 × 9 cm), narrowest first; on 80 mm the widest symbol inside the printable 72 mm
/// (at least 4.5 cm wide), which is also the shortest.
fn timbre_for(ted: &[u8], format: Format) -> Result<(Symbol, f32), PrintError> {
    let probe = timbre::encode(ted, 15)?;
    let codewords = probe.codewords();
    let mm = |modules: usize, module: f32| modules as f32 * module / PT_PER_MM;
    for &module in module_sizes(format) {
        let fits = |cols: usize| {
            let (w, h) = timbre::modules_for(codewords, cols);
            let (w, h) = (mm(w, module), mm(h, module));
            match format {
                Format::Letter => (50.0..=90.0).contains(&w) && (20.0..=40.0).contains(&h),
                Format::Thermal80 => (45.0..=72.0).contains(&w) && h >= 20.0,
            }
        };
        let pick = match format {
            Format::Letter => (3..=30).find(|c| fits(*c)),
            Format::Thermal80 => (3..=30).rev().find(|c| fits(*c)),
        };
        if let Some(cols) = pick {
            let s = if cols == 15 { probe.clone() } else { timbre::encode(ted, cols as u32)? };
            return Ok((s, module));
        }
    }
    // Nothing fits the box (a TED far larger than the SII's): the smallest module, 15 columns.
    let module = module_sizes(format).last().copied().unwrap_or(1.0);
    Ok((probe, module))
}

fn resolution_caption(opts: &Options) -> String {
    match opts.resolution {
        Some((n, y)) => format!("Res. {n} de {y} - Verifique documento: www.sii.cl"),
        None => "Verifique documento: www.sii.cl".into(),
    }
}

fn logo_size(l: &Raster, max_w: f32, max_h: f32) -> (f32, f32) {
    let (w, h) = match l {
        Raster::Bits { width, height, .. }
        | Raster::Samples { width, height, .. }
        | Raster::Jpeg { width, height, .. } => (*width as f32, *height as f32),
    };
    let k = (max_w / w).min(max_h / h);
    (w * k, h * k)
}

fn money(v: &str) -> String {
    format!("$ {}", names::amount(v))
}

/// The totals as label and amount, in the order the XML has them.
fn total_rows(doc: &PrintDoc) -> Vec<(String, String)> {
    let taxes = TaxTable::default();
    let mut out = Vec::new();
    // An export's amounts are in its operation currency, named instead of "$".
    let moneda = doc.total("TpoMoneda").filter(|m| *m != "PESO CL");
    for (k, v) in &doc.totals {
        let label = match k.as_str() {
            "TpoMoneda" => {
                out.push(("Moneda".into(), v.clone()));
                continue;
            }
            "TpoCambio" => {
                out.push(("Tipo de cambio".into(), names::amount(v)));
                continue;
            }
            other if other.starts_with("MntTotOtrMnda:") => {
                let m = &other["MntTotOtrMnda:".len()..];
                let amount = if m == "PESO CL" { money(v) } else { format!("{m} {}", names::amount(v)) };
                out.push((format!("Total en {m}"), amount));
                continue;
            }
            "MntNeto" => "Monto neto".to_string(),
            "MntExe" => "Monto exento".to_string(),
            "TasaIVA" => continue,
            "IVA" => format!("IVA {}%", names::amount(doc.total("TasaIVA").unwrap_or("19"))),
            "IVANoRet" => "IVA no retenido".into(),
            "CredEC" => "Crédito especial empresas constructoras".into(),
            "GrntDep" => "Garantía por depósito de envases".into(),
            "ValComNeto" => "Comisiones y cargos, neto".into(),
            "ValComExe" => "Comisiones y cargos, exento".into(),
            "ValComIVA" => "IVA de comisiones y cargos".into(),
            "MntTotal" => "TOTAL".into(),
            "MontoNF" => "Monto no facturable".into(),
            "MontoPeriodo" => "Monto del período".into(),
            "SaldoAnterior" => "Saldo anterior".into(),
            "VlrPagar" => "Valor a pagar".into(),
            "MntBase" => "Monto base faenamiento".into(),
            "MntMargenCom" => "Margen de comercialización".into(),
            "IVAProp" => "IVA propio".into(),
            "IVATerc" => "IVA de terceros".into(),
            "IVANoRetenido" => "IVA no retenido".into(),
            other => match other.strip_prefix("ImptoReten:") {
                Some(code) => {
                    let name = code.parse::<u16>().ok().and_then(|c| taxes.0.get(&c)).map(|t| t.name.clone());
                    name.map(|n| format!("{n} ({code})")).unwrap_or_else(|| format!("Impuesto código {code}"))
                }
                None => other.to_string(),
            },
        };
        out.push((label, moneda.map_or_else(|| money(v), |m| format!("{m} {}", names::amount(v)))));
    }
    out
}

fn line_amounts(l: &super::model::Line) -> (String, String, String) {
    let qty = l.qty.as_deref().map(names::amount).unwrap_or_default();
    let price = l.price.as_deref().map(names::amount).unwrap_or_default();
    let mut dr = Vec::new();
    if let Some(p) = &l.discount_pct {
        dr.push(format!("-{}%", names::amount(p)));
    } else if let Some(d) = &l.discount {
        dr.push(format!("-{}", names::amount(d)));
    }
    if let Some(p) = &l.surcharge_pct {
        dr.push(format!("+{}%", names::amount(p)));
    } else if let Some(r) = &l.surcharge {
        dr.push(format!("+{}", names::amount(r)));
    }
    (qty, price, dr.join(" "))
}

fn line_text(l: &super::model::Line) -> String {
    let mut s = l.name.clone();
    if s.to_lowercase().contains("exento") {
        return s;
    }
    match l.exempt.as_deref() {
        Some("1") => s.push_str(" (exento)"),
        Some("2") => s.push_str(" (no facturable)"),
        Some(_) => s.push_str(" (no afecto)"),
        None => {}
    }
    s
}

fn global_text(g: &super::model::GlobalDr) -> String {
    let kind = if g.kind == "R" { "Recargo global" } else { "Descuento global" };
    let value = if g.unit == "%" { format!("{}%", names::amount(&g.value)) } else { money(&g.value) };
    let glosa = g.glosa.as_deref().map(|s| format!(" — {s}")).unwrap_or_default();
    let exe = if g.exempt.is_some() { " (sobre exento)" } else { "" };
    format!("{kind}: {value}{glosa}{exe}")
}

fn reference_text(r: &super::model::Reference) -> String {
    let mut s = names::reference_name(&r.tipo);
    if let Some(f) = &r.folio {
        s.push_str(&format!(" N° {f}"));
    }
    if let Some(d) = &r.fecha {
        s.push_str(&format!(" del {}", names::date(d)));
    }
    if let Some(c) = r.cod_ref.as_deref().and_then(names::cod_ref_name) {
        s.push_str(&format!(" — {c}"));
    }
    if let Some(z) = &r.razon {
        s.push_str(&format!(": {z}"));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Letter

const L_W: f32 = 612.0;
const L_H: f32 = 792.0;
const M: f32 = 36.0;
const BOX_W: f32 = 200.0;
/// The timbre's left edge: more than the 2 cm the SII asks for.
const TIMBRE_X: f32 = 22.0 * PT_PER_MM;

struct Cols {
    code: (f32, f32),
    desc: (f32, f32),
    qty: f32,
    unit: (f32, f32),
    price: f32,
    dr: f32,
    amount: f32,
}

const COLS: Cols = Cols {
    code: (M + 4.0, 58.0),
    desc: (M + 64.0, 226.0),
    qty: M + 340.0,
    unit: (M + 346.0, 36.0),
    price: M + 440.0,
    dr: M + 484.0,
    amount: L_W - M - 4.0,
};

const ROW_SIZE: f32 = 8.5;
const ROW_LEAD: f32 = 10.5;

/// One Detalle row as printed: its wrapped description lines.
fn detail_rows(doc: &PrintDoc) -> Vec<Vec<String>> {
    doc.lines
        .iter()
        .map(|l| {
            let mut lines = fonts::wrap(Font::Regular, ROW_SIZE, &line_text(l), COLS.desc.1);
            if let Some(d) = &l.description {
                lines.extend(fonts::wrap(Font::Regular, ROW_SIZE - 1.0, d, COLS.desc.1));
            }
            lines
        })
        .collect()
}

fn timbre_size(symbol: &Symbol, module: f32) -> (f32, f32) {
    (symbol.width as f32 * module, symbol.height as f32 * module)
}

fn letter(doc: &PrintDoc, opts: &Options, symbol: &Symbol, module: f32, logo: Option<usize>) -> Vec<Page> {
    let rows = detail_rows(doc);
    let (tw, th) = timbre_size(symbol, module);
    let totals = total_rows(doc);
    let footer_h =
        (th + 34.0).max(totals.len() as f32 * 14.0 + 16.0) + if opts.cedible { ACUSE_HEIGHT + 8.0 } else { 0.0 };
    let extras: Vec<String> = doc
        .globals
        .iter()
        .map(global_text)
        .chain(doc.references.iter().map(|r| format!("Referencia: {}", reference_text(r))))
        .collect();
    let extra_lines: Vec<Vec<String>> =
        extras.iter().map(|e| fonts::wrap(Font::Regular, 8.5, e, L_W - 2.0 * M - 8.0)).collect();

    // The first page's header, drawn once: how much it takes decides the plan.
    let mut first = Page::new(L_W, L_H);
    let first_top = letter_header(&mut first, doc, opts, logo);
    let mut first = Some(first);
    // Plan: which rows go on which page, then whether the footer fits after them.
    let next_top = M + 40.0;
    let bottom = L_H - M - 14.0;
    let mut pages: Vec<Vec<usize>> = vec![Vec::new()];
    let mut y = first_top + 18.0;
    for (i, r) in rows.iter().enumerate() {
        let h = r.len() as f32 * ROW_LEAD + 3.0;
        if y + h > bottom {
            pages.push(Vec::new());
            y = next_top + 18.0;
        }
        if let Some(p) = pages.last_mut() {
            p.push(i);
        }
        y += h;
    }
    let extras_h: f32 = extra_lines.iter().map(|l| l.len() as f32 * 10.5 + 2.0).sum::<f32>() + 6.0;
    let footer_needs_page = y + extras_h + footer_h > bottom;
    if footer_needs_page {
        pages.push(Vec::new());
    }
    let n = pages.len();
    let mut out = Vec::with_capacity(n);
    for (p, page_rows) in pages.iter().enumerate() {
        let (mut page, mut y) = match first.take() {
            Some(page) => (page, first_top),
            None => {
                let mut page = Page::new(L_W, L_H);
                let y = letter_continuation(&mut page, doc);
                (page, y)
            }
        };
        if !page_rows.is_empty() || p == 0 {
            y = table_header(&mut page, y);
            for &i in page_rows {
                y = table_row(&mut page, &doc.lines[i], &rows[i], y);
            }
            page.rule(M, L_W - M, y, 0.5);
        }
        if p == n - 1 {
            let mut y = y + 6.0;
            for lines in &extra_lines {
                for l in lines {
                    y += 10.5;
                    page.text(Font::Regular, 8.5, M + 4.0, y, l);
                }
                y += 2.0;
            }
            letter_footer(&mut page, doc, opts, (tw, th), &totals);
        }
        page.text_center(Font::Regular, 7.0, L_W / 2.0, L_H - M + 14.0, &format!("Página {} de {n}", p + 1));
        if opts.not_valid {
            page.watermark("NO VÁLIDO");
        }
        out.push(page);
    }
    out
}

fn letter_header(page: &mut Page, doc: &PrintDoc, opts: &Options, logo: Option<usize>) -> f32 {
    // Document box, top right.
    let bx = L_W - M - BOX_W;
    let name_lines = fonts::wrap(Font::Bold, 12.0, &names::document_name(doc.tipo), BOX_W - 16.0);
    let box_h = 30.0 + name_lines.len() as f32 * 15.0 + 20.0;
    page.frame(bx, M, BOX_W, box_h, 2.0, RED);
    let cx = bx + BOX_W / 2.0;
    let mut y = M + 20.0;
    page.text_center(Font::Bold, 12.0, cx, y, &format!("R.U.T.: {}", names::rut(&doc.emisor.rut)));
    for l in &name_lines {
        y += 15.0;
        page.text_center(Font::Bold, 12.0, cx, y, l);
    }
    y += 18.0;
    page.text_center(Font::Bold, 12.0, cx, y, &format!("N° {}", doc.folio));
    let mut box_bottom = M + box_h;
    if let Some(o) = &opts.office {
        box_bottom += 14.0;
        page.text_center(Font::Bold, 9.0, cx, box_bottom, o);
    }

    // Emisor, top left (after the logo, ≤ 1/5 of the page).
    let mut x = M;
    let mut ey = M;
    if let (Some(i), Some(l)) = (logo, opts.logo.as_ref()) {
        let (w, h) = logo_size(l, 110.0, 60.0);
        page.image(i, M, M, w, h);
        x = M + w + 10.0;
    }
    let max_w = bx - 12.0 - x;
    for l in fonts::wrap(Font::Bold, 12.0, &doc.emisor.name, max_w) {
        ey += 14.0;
        page.text(Font::Bold, 12.0, x, ey, &l);
    }
    let e = &doc.emisor;
    let mut lines: Vec<String> = Vec::new();
    if let Some(g) = &e.giro {
        lines.extend(fonts::wrap(Font::Regular, 8.5, &format!("Giro: {g}"), max_w));
    }
    let place =
        [e.address.clone(), e.comuna.clone(), e.ciudad.clone()].into_iter().flatten().collect::<Vec<_>>().join(", ");
    if !place.is_empty() {
        lines.extend(fonts::wrap(Font::Regular, 8.5, &place, max_w));
    }
    let contact =
        [e.phone.as_ref().map(|p| format!("Teléfono: {p}")), e.email.clone()].into_iter().flatten().collect::<Vec<_>>();
    if !contact.is_empty() {
        lines.extend(fonts::wrap(Font::Regular, 8.5, &contact.join("  ·  "), max_w));
    }
    for l in lines {
        ey += 10.5;
        page.text(Font::Regular, 8.5, x, ey, &l);
    }
    let top = box_bottom.max(ey) + 12.0;
    receptor_block(page, doc, top)
}

fn letter_continuation(page: &mut Page, doc: &PrintDoc) -> f32 {
    page.text(Font::Bold, 10.0, M, M + 12.0, &format!("{} N° {}", names::document_name(doc.tipo), doc.folio));
    page.text(
        Font::Regular,
        8.5,
        M,
        M + 24.0,
        &format!("{} — R.U.T. {} (continuación)", doc.emisor.name, names::rut(&doc.emisor.rut)),
    );
    M + 40.0
}

fn receptor_block(page: &mut Page, doc: &PrintDoc, top: f32) -> f32 {
    let mut left: Vec<(&str, String)> = Vec::new();
    if let Some(r) = &doc.receptor {
        left.push(("Señor(es):", r.name.clone()));
        left.push(("R.U.T.:", names::rut(&r.rut)));
        if let Some(g) = &r.giro {
            left.push(("Giro:", g.clone()));
        }
        let place = [r.address.clone(), r.comuna.clone(), r.ciudad.clone()].into_iter().flatten().collect::<Vec<_>>();
        if !place.is_empty() {
            left.push(("Dirección:", place.join(", ")));
        }
        if let Some(c) = &r.contact {
            left.push(("Contacto:", c.clone()));
        }
        if let Some(c) = &r.email {
            left.push(("Correo:", c.clone()));
        }
    }
    let mut right: Vec<(&str, String)> = vec![("Fecha de emisión:", names::date(&doc.fch_emis))];
    if let Some(v) = &doc.fch_venc {
        right.push(("Vencimiento:", names::date(v)));
    }
    if let Some(f) = doc.fma_pago.as_deref().and_then(names::forma_pago_name) {
        right.push(("Forma de pago:", f.into()));
    }
    if let Some(t) = doc.ind_traslado.as_deref().and_then(names::traslado_name) {
        right.push(("Traslado:", t.into()));
    }
    for (k, v) in &doc.customs {
        right.push((k.as_str(), v.clone()));
    }
    if let Some(t) = &doc.transport {
        if let Some(p) = &t.patente {
            right.push(("Patente:", p.clone()));
        }
        if let Some(r) = &t.rut_trans {
            right.push(("Transportista:", names::rut(r)));
        }
        if let Some(c) = &t.chofer {
            right.push(("Chofer:", c.clone()));
        }
        let dest =
            [t.dir_dest.clone(), t.cmna_dest.clone(), t.ciudad_dest.clone()].into_iter().flatten().collect::<Vec<_>>();
        if !dest.is_empty() {
            right.push(("Destino:", dest.join(", ")));
        }
    }
    let lw = 320.0;
    let mut ly = top;
    for (k, v) in &left {
        for (j, l) in fonts::wrap(Font::Regular, 8.5, v, lw - 64.0).iter().enumerate() {
            ly += 11.0;
            if j == 0 {
                page.text(Font::Bold, 8.5, M + 6.0, ly, k);
            }
            page.text(Font::Regular, 8.5, M + 64.0, ly, l);
        }
    }
    let rx = M + lw + 10.0;
    let mut ry = top;
    for (k, v) in &right {
        for (j, l) in fonts::wrap(Font::Regular, 8.5, v, L_W - M - rx - 84.0).iter().enumerate() {
            ry += 11.0;
            if j == 0 {
                page.text(Font::Bold, 8.5, rx, ry, k);
            }
            page.text(Font::Regular, 8.5, rx + 80.0, ry, l);
        }
    }
    let bottom = ly.max(ry) + 6.0;
    page.frame(M, top, L_W - 2.0 * M, bottom - top, 0.5, BLACK);
    bottom + 10.0
}

fn table_header(page: &mut Page, y: f32) -> f32 {
    page.fill(M, y, L_W - 2.0 * M, 14.0, 0.88);
    let b = y + 10.0;
    page.text(Font::Bold, 8.0, COLS.code.0, b, "Código");
    page.text(Font::Bold, 8.0, COLS.desc.0, b, "Descripción");
    page.text_right(Font::Bold, 8.0, COLS.qty, b, "Cantidad");
    page.text(Font::Bold, 8.0, COLS.unit.0, b, "Unidad");
    page.text_right(Font::Bold, 8.0, COLS.price, b, "P. unitario");
    page.text_right(Font::Bold, 8.0, COLS.dr, b, "Dcto/Rec");
    page.text_right(Font::Bold, 8.0, COLS.amount, b, "Valor");
    y + 16.0
}

fn table_row(page: &mut Page, l: &super::model::Line, lines: &[String], y: f32) -> f32 {
    let (qty, price, dr) = line_amounts(l);
    let b = y + ROW_LEAD - 1.5;
    let code = l.codes.first().map(|(_, v)| v.clone()).unwrap_or_default();
    if let Some(c) = fonts::wrap(Font::Regular, ROW_SIZE - 1.0, &code, COLS.code.1).first() {
        page.text(Font::Regular, ROW_SIZE - 1.0, COLS.code.0, b, c);
    }
    for (i, t) in lines.iter().enumerate() {
        let size = if i == 0 { ROW_SIZE } else { ROW_SIZE - 1.0 };
        page.text(Font::Regular, size, COLS.desc.0, b + i as f32 * ROW_LEAD, t);
    }
    page.text_right(Font::Regular, ROW_SIZE, COLS.qty, b, &qty);
    if let Some(u) =
        l.unit.as_deref().and_then(|u| fonts::wrap(Font::Regular, ROW_SIZE, u, COLS.unit.1).into_iter().next())
    {
        page.text(Font::Regular, ROW_SIZE, COLS.unit.0, b, &u);
    }
    page.text_right(Font::Regular, ROW_SIZE, COLS.price, b, &price);
    page.text_right(Font::Regular, ROW_SIZE, COLS.dr, b, &dr);
    page.text_right(Font::Regular, ROW_SIZE, COLS.amount, b, &names::amount(&l.amount));
    y + lines.len() as f32 * ROW_LEAD + 3.0
}

fn letter_footer(page: &mut Page, doc: &PrintDoc, opts: &Options, (tw, th): (f32, f32), totals: &[(String, String)]) {
    let bottom = L_H - M - 14.0;
    // Timbre at the bottom left, captions under it.
    let ty = bottom - th - 22.0;
    page.image(0, TIMBRE_X, ty, tw, th);
    let cx = TIMBRE_X + tw / 2.0;
    page.text_center(Font::Bold, 8.0, cx, ty + th + 10.0, "Timbre Electrónico SII");
    page.text_center(Font::Regular, 7.0, cx, ty + th + 19.0, &resolution_caption(opts));
    // Totals at the bottom right.
    let tx = L_W - M - 190.0;
    let mut y = bottom - totals.len() as f32 * 14.0 - 6.0;
    page.frame(tx, y - 6.0, 190.0, totals.len() as f32 * 14.0 + 12.0, 0.5, BLACK);
    for (label, v) in totals {
        y += 14.0;
        let font = if label == "TOTAL" { Font::Bold } else { Font::Regular };
        // A long tax name gives way to the amount.
        let room = 184.0 - 6.0 - fonts::width(font, 9.0, v) - 8.0;
        let label = fonts::wrap(font, 9.0, label, room).into_iter().next().unwrap_or_default();
        page.text(font, 9.0, tx + 6.0, y - 3.0, &label);
        page.text_right(font, 9.0, tx + 184.0, y - 3.0, v);
    }
    if opts.cedible {
        let top = ty.min(bottom - totals.len() as f32 * 14.0 - 12.0) - ACUSE_HEIGHT - 8.0;
        acuse_block(page, doc, M, top, L_W - 2.0 * M);
    }
}

/// The cedible copy's legend and acuse de recibo block (`ACUSE_HEIGHT` tall).
fn acuse_block(page: &mut Page, doc: &PrintDoc, x: f32, top: f32, w: f32) {
    let legend = names::cedible_legend(doc.tipo).unwrap_or("CEDIBLE");
    page.text_right(Font::Bold, 13.0, x + w, top + 12.0, legend);
    let top = top + 18.0;
    page.frame(x, top, w, 88.0, 0.7, BLACK);
    let mut y = top + 14.0;
    let half = w / 2.0;
    for (i, label) in ["Nombre:", "R.U.T.:", "Fecha:", "Recinto:"].iter().enumerate() {
        let (cx, cy) = (x + 6.0 + (i % 2) as f32 * half, y + (i / 2) as f32 * 16.0);
        page.text(Font::Bold, 8.0, cx, cy, label);
        page.rule(cx + 44.0, cx + half - 16.0, cy + 1.5, 0.4);
    }
    y += 32.0;
    page.text(Font::Bold, 8.0, x + 6.0, y, "Firma:");
    page.rule(x + 50.0, x + half - 16.0, y + 1.5, 0.4);
    for (i, l) in fonts::wrap(Font::Regular, 6.5, names::ACUSE_DE_RECIBO, w - 12.0).iter().enumerate() {
        page.text(Font::Regular, 6.5, x + 6.0, y + 12.0 + i as f32 * 8.0, l);
    }
}

const ACUSE_HEIGHT: f32 = 106.0;

// ---------------------------------------------------------------------------------------------
// 80 mm thermal

const T_W: f32 = 80.0 * PT_PER_MM;
const T_M: f32 = 4.0 * PT_PER_MM;

/// Draws the 80 mm copy on a page `height` tall; returns it and the height used.
fn thermal(
    doc: &PrintDoc,
    opts: &Options,
    symbol: &Symbol,
    module: f32,
    logo: Option<usize>,
    height: f32,
) -> (Page, f32) {
    let mut p = Page::new(T_W, height);
    let w = T_W - 2.0 * T_M;
    let cx = T_W / 2.0;
    let mut y = T_M;
    let centered = |p: &mut Page, y: &mut f32, font: Font, size: f32, s: &str| {
        for l in fonts::wrap(font, size, s, w) {
            *y += size + 2.5;
            p.text_center(font, size, cx, *y, &l);
        }
    };
    if let (Some(i), Some(l)) = (logo, opts.logo.as_ref()) {
        let (lw, lh) = logo_size(l, w * 0.6, 50.0);
        p.image(i, cx - lw / 2.0, y, lw, lh);
        y += lh + 4.0;
    }
    let e = &doc.emisor;
    centered(&mut p, &mut y, Font::Bold, 9.0, &e.name);
    if let Some(g) = &e.giro {
        centered(&mut p, &mut y, Font::Regular, 7.0, g);
    }
    let place =
        [e.address.clone(), e.comuna.clone(), e.ciudad.clone()].into_iter().flatten().collect::<Vec<_>>().join(", ");
    if !place.is_empty() {
        centered(&mut p, &mut y, Font::Regular, 7.0, &place);
    }
    // Document box.
    y += 6.0;
    let name_lines = fonts::wrap(Font::Bold, 9.0, &names::document_name(doc.tipo), w - 16.0);
    let box_h = 16.0 + name_lines.len() as f32 * 11.5 + 14.0;
    p.frame(T_M + 6.0, y, w - 12.0, box_h, 1.5, RED);
    let mut by = y + 13.0;
    p.text_center(Font::Bold, 9.0, cx, by, &format!("R.U.T.: {}", names::rut(&e.rut)));
    for l in &name_lines {
        by += 11.5;
        p.text_center(Font::Bold, 9.0, cx, by, l);
    }
    by += 12.0;
    p.text_center(Font::Bold, 9.0, cx, by, &format!("N° {}", doc.folio));
    y += box_h;
    if let Some(o) = &opts.office {
        y += 10.0;
        p.text_center(Font::Bold, 7.0, cx, y, o);
    }
    y += 6.0;
    let kv = |p: &mut Page, y: &mut f32, k: &str, v: &str| {
        let kw = fonts::width(Font::Bold, 7.0, k) + 3.0;
        for (j, l) in fonts::wrap(Font::Regular, 7.0, v, w - kw).iter().enumerate() {
            *y += 9.0;
            if j == 0 {
                p.text(Font::Bold, 7.0, T_M, *y, k);
            }
            p.text(Font::Regular, 7.0, T_M + kw, *y, l);
        }
    };
    kv(&mut p, &mut y, "Fecha:", &names::date(&doc.fch_emis));
    if let Some(r) = &doc.receptor {
        if !r.name.is_empty() {
            kv(&mut p, &mut y, "Cliente:", &r.name);
        }
        kv(&mut p, &mut y, "R.U.T.:", &names::rut(&r.rut));
    }
    // A guía travels with the goods: its transfer and transport data.
    if let Some(t) = doc.ind_traslado.as_deref().and_then(names::traslado_name) {
        kv(&mut p, &mut y, "Traslado:", t);
    }
    if let Some(t) = &doc.transport {
        for (k, v) in [("Patente:", &t.patente), ("Transportista:", &t.rut_trans), ("Chofer:", &t.chofer)] {
            if let Some(v) = v {
                kv(&mut p, &mut y, k, v);
            }
        }
        let dest =
            [t.dir_dest.clone(), t.cmna_dest.clone(), t.ciudad_dest.clone()].into_iter().flatten().collect::<Vec<_>>();
        if !dest.is_empty() {
            kv(&mut p, &mut y, "Destino:", &dest.join(", "));
        }
    }
    y += 4.0;
    p.rule(T_M, T_W - T_M, y, 0.5);
    for l in &doc.lines {
        for t in fonts::wrap(Font::Regular, 7.5, &line_text(l), w) {
            y += 9.5;
            p.text(Font::Regular, 7.5, T_M, y, &t);
        }
        let (qty, price, dr) = line_amounts(l);
        y += 9.5;
        let detail = match (qty.is_empty(), price.is_empty()) {
            (false, false) => format!("{qty} x {price} {dr}"),
            (false, true) => format!("{qty} {dr}"),
            _ => dr,
        };
        p.text(Font::Regular, 7.0, T_M + 8.0, y, detail.trim());
        p.text_right(Font::Regular, 7.5, T_W - T_M, y, &names::amount(&l.amount));
    }
    y += 4.0;
    p.rule(T_M, T_W - T_M, y, 0.5);
    for g in &doc.globals {
        for t in fonts::wrap(Font::Regular, 7.0, &global_text(g), w) {
            y += 9.0;
            p.text(Font::Regular, 7.0, T_M, y, &t);
        }
    }
    for (label, v) in total_rows(doc) {
        y += 10.0;
        let font = if label == "TOTAL" { Font::Bold } else { Font::Regular };
        p.text(font, 8.0, T_M, y, &label);
        p.text_right(font, 8.0, T_W - T_M, y, &v);
    }
    for r in &doc.references {
        for t in fonts::wrap(Font::Regular, 7.0, &format!("Referencia: {}", reference_text(r)), w) {
            y += 9.0;
            p.text(Font::Regular, 7.0, T_M, y, &t);
        }
    }
    // Timbre, centred, at least 4.5 cm wide.
    let (tw, th) = timbre_size(symbol, module);
    y += 10.0;
    p.image(0, cx - tw / 2.0, y, tw, th);
    y += th + 10.0;
    p.text_center(Font::Bold, 7.0, cx, y, "Timbre Electrónico SII");
    for l in fonts::wrap(Font::Regular, 6.0, &resolution_caption(opts), w) {
        y += 8.0;
        p.text_center(Font::Regular, 6.0, cx, y, &l);
    }
    if opts.cedible {
        y += 8.0;
        acuse_block(&mut p, doc, T_M, y, w);
        y += ACUSE_HEIGHT;
    }
    if opts.not_valid {
        p.watermark("NO VÁLIDO");
    }
    (p, y)
}
