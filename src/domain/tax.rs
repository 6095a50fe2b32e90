//! The tax engine: line amounts, descuentos/recargos, IVA, additional taxes and retentions, boleta
//! gross-price split. Exact decimal arithmetic, half-away-from-zero rounding (PHP `round`, which the
//! SII's reference implementations use); the same input always gives the same answer.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::document::{Detalle, DocumentInput, TipoDte};
use crate::error::{FieldError, Problems};

/// The construction companies' special credit: 65 % of the IVA (SII, Formato de los Documentos
/// Tributarios Electrónicos v2.2, field 119 `CredEC`: "IVA × 0,65", subtracted from the total).
pub const CRED_EC_RATE: Decimal = Decimal::from_parts(65, 0, 0, false, 2);

/// IVA rate in percent (Sii::IVA = 19).
pub const TASA_IVA: Decimal = Decimal::from_parts(19, 0, 0, false, 0);
/// The code of total IVA retention (factura de compra).
pub const IVA_RETENIDO_TOTAL: u16 = 15;
/// IVA anticipado on meat slaughter, computed on MntBase.
pub const IVA_ANTICIPADO_FAENAMIENTO: u16 = 17;

/// `A` adds to the total (impuesto adicional); `R` is withheld from it (retención).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaxKind {
    A,
    R,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxCode {
    pub kind: TaxKind,
    /// Percent.
    pub rate: Decimal,
    pub name: String,
}

/// Additional taxes and retentions by SII code. Rates change by law, so the table is configuration;
/// the defaults are the ones published with LibreDTE's data repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxTable(pub BTreeMap<u16, TaxCode>);

impl Default for TaxTable {
    fn default() -> Self {
        use TaxKind::{A, R};
        let rows: [(u16, TaxKind, i64, u32, &str); 25] = [
            (15, R, 19, 0, "IVA retenido total"),
            // Formato DTE v2.2 §4: a factura de compra without retention, "hoy utilizada sólo por
            // Bolsa de Productos de Chile".
            (49, R, 0, 0, "Factura de compra sin retención"),
            (30, R, 10, 0, "IVA retenido legumbres"),
            (31, R, 19, 0, "IVA retenido silvestres"),
            (32, R, 8, 0, "IVA retenido ganado"),
            (33, R, 8, 0, "IVA retenido madera"),
            (34, R, 4, 0, "IVA retenido trigo"),
            (36, R, 10, 0, "IVA retenido arroz"),
            (37, R, 10, 0, "IVA retenido hidrobiológicas"),
            (38, R, 19, 0, "IVA retenido chatarra"),
            (39, R, 19, 0, "IVA retenido PPA"),
            (41, R, 19, 0, "IVA retenido construcción"),
            (47, R, 19, 0, "IVA retenido cartones"),
            (48, R, 14, 0, "IVA retenido frambuesas y pasas"),
            (17, A, 5, 0, "IVA anticipado faenamiento carne"),
            (18, A, 5, 0, "IVA anticipado carne"),
            (19, A, 12, 0, "IVA anticipado harina"),
            (23, A, 15, 0, "Impuesto adicional art. 37 a, b, c"),
            (24, A, 315, 1, "Licores, piscos, whisky"),
            (25, A, 205, 1, "Vinos"),
            (26, A, 205, 1, "Cervezas y bebidas alcohólicas"),
            (27, A, 10, 0, "Bebidas analcohólicas y minerales"),
            (271, A, 18, 0, "Bebidas analcohólicas con elevado contenido de azúcar"),
            (44, A, 15, 0, "Impuesto adicional art. 37 e, h, i, l"),
            (45, A, 50, 0, "Impuesto adicional pirotecnia"),
        ];
        TaxTable(
            rows.into_iter()
                .map(|(code, kind, m, s, name)| (code, TaxCode { kind, rate: Decimal::new(m, s), name: name.into() }))
                .collect(),
        )
    }
}

/// Pesos are whole; other currencies carry 4 decimals (LibreDTE `Dte::round`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Currency {
    #[default]
    Peso,
    Foreign,
}

impl Currency {
    /// The currency a name of `TipMonType` counts in: whole pesos for PESO CL, else 4 decimals.
    pub fn of_moneda(name: &str) -> Currency {
        if name == "PESO CL" {
            Currency::Peso
        } else {
            Currency::Foreign
        }
    }

    pub fn round(self, v: Decimal) -> Decimal {
        let dp = match self {
            Currency::Peso => 0,
            Currency::Foreign => 4,
        };
        v.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero).normalize()
    }
}

/// `OtraMoneda` as it goes into the document.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OtraMonedaTotals {
    #[serde(rename = "TpoMoneda")]
    pub tpo_moneda: String,
    #[serde(rename = "TpoCambio")]
    pub tpo_cambio: Decimal,
    #[serde(rename = "MntNetoOtrMnda", skip_serializing_if = "Option::is_none")]
    pub mnt_neto: Option<Decimal>,
    #[serde(rename = "MntExeOtrMnda", skip_serializing_if = "Option::is_none")]
    pub mnt_exe: Option<Decimal>,
    #[serde(rename = "MntFaeCarneOtrMnda", skip_serializing_if = "Option::is_none")]
    pub mnt_fae_carne: Option<Decimal>,
    #[serde(rename = "MntMargComOtrMnda", skip_serializing_if = "Option::is_none")]
    pub mnt_marg_com: Option<Decimal>,
    #[serde(rename = "IVAOtrMnda", skip_serializing_if = "Option::is_none")]
    pub iva: Option<Decimal>,
    #[serde(rename = "ImpRetOtrMnda", skip_serializing_if = "Vec::is_empty")]
    pub imp_ret: Vec<Retencion>,
    #[serde(rename = "IVANoRetOtrMnda", skip_serializing_if = "Option::is_none")]
    pub iva_no_ret: Option<Decimal>,
    #[serde(rename = "MntTotOtrMnda")]
    pub mnt_total: Decimal,
}

/// The computed amounts of one Detalle line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineAmounts {
    pub descuento_monto: Option<Decimal>,
    pub recargo_monto: Option<Decimal>,
    pub monto_item: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Retencion {
    #[serde(rename = "TipoImp")]
    pub tipo_imp: u16,
    #[serde(rename = "TasaImp")]
    pub tasa_imp: Decimal,
    #[serde(rename = "MontoImp")]
    pub monto_imp: Decimal,
}

/// Totales, as they go into the document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct Totals {
    #[serde(rename = "MntNeto", skip_serializing_if = "Option::is_none")]
    pub mnt_neto: Option<Decimal>,
    #[serde(rename = "MntExe", skip_serializing_if = "Option::is_none")]
    pub mnt_exe: Option<Decimal>,
    #[serde(rename = "MntBase", skip_serializing_if = "Option::is_none")]
    pub mnt_base: Option<Decimal>,
    #[serde(rename = "MntMargenCom", skip_serializing_if = "Option::is_none")]
    pub mnt_margen_com: Option<Decimal>,
    #[serde(rename = "TasaIVA", skip_serializing_if = "Option::is_none")]
    pub tasa_iva: Option<Decimal>,
    #[serde(rename = "IVA", skip_serializing_if = "Option::is_none")]
    pub iva: Option<Decimal>,
    #[serde(rename = "IVAProp", skip_serializing_if = "Option::is_none")]
    pub iva_prop: Option<Decimal>,
    #[serde(rename = "IVATerc", skip_serializing_if = "Option::is_none")]
    pub iva_terc: Option<Decimal>,
    #[serde(rename = "ImptoReten", skip_serializing_if = "Vec::is_empty")]
    pub impto_reten: Vec<Retencion>,
    #[serde(rename = "IVANoRet", skip_serializing_if = "Option::is_none")]
    pub iva_no_ret: Option<Decimal>,
    #[serde(rename = "CredEC", skip_serializing_if = "Option::is_none")]
    pub cred_ec: Option<Decimal>,
    #[serde(rename = "GrntDep", skip_serializing_if = "Option::is_none")]
    pub grnt_dep: Option<Decimal>,
    /// A liquidación-factura's commissions, subtracted from the total.
    #[serde(rename = "Comisiones", skip_serializing_if = "Option::is_none")]
    pub comisiones: Option<super::liquidacion::ComisionesTotales>,
    #[serde(rename = "MntTotal")]
    pub mnt_total: Decimal,
    #[serde(rename = "MontoNF", skip_serializing_if = "Option::is_none")]
    pub monto_nf: Option<Decimal>,
    #[serde(rename = "MontoPeriodo", skip_serializing_if = "Option::is_none")]
    pub monto_periodo: Option<Decimal>,
    /// Exports: the operation currency (`TpoMoneda`).
    #[serde(rename = "TpoMoneda", skip_serializing_if = "Option::is_none")]
    pub tpo_moneda: Option<String>,
    #[serde(rename = "OtraMoneda", skip_serializing_if = "Option::is_none")]
    pub otra_moneda: Option<OtraMonedaTotals>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub lines: Vec<LineAmounts>,
    /// The amount each global descuento/recargo moved, in input order.
    pub globals: Vec<Decimal>,
    /// A liquidación-factura's IVA of each commission, in input order.
    pub comisiones: Vec<Decimal>,
    /// Lines priced in the other currency (`OtrMnda`): their amounts in it.
    pub otr_lines: Vec<LineAmounts>,
    /// Each global discount or surcharge in the other currency (`ValorDROtrMnda`), when the
    /// document has one.
    pub otr_globals: Vec<Decimal>,
    pub totals: Totals,
}

fn pct(base: Decimal, pct: Decimal) -> Decimal {
    base * pct / Decimal::ONE_HUNDRED
}

/// Documents that may carry no prices, as the SII allows: a guía de despacho that is not a sale
/// (`IndTraslado` other than 1: internal transfers, consignments, free deliveries…) and a nota
/// that only corrects text (every `CodRef` is 2).
pub fn priceless_allowed(doc: &DocumentInput, tipo: TipoDte) -> bool {
    match tipo {
        TipoDte::GuiaDespacho => doc.encabezado.id_doc.ind_traslado.is_some_and(|t| t != 1),
        TipoDte::NotaCredito | TipoDte::NotaDebito => {
            let codes: Vec<u8> = doc.referencia.iter().filter_map(|r| r.cod_ref).collect();
            !codes.is_empty() && codes.iter().all(|c| *c == 2)
        }
        _ => false,
    }
}

/// The CredEC the input asks for: `None` for none; `Some(None)` for the computed 65 %;
/// `Some(Some(x))` for an amount given.
fn cred_ec(doc: &DocumentInput, p: &mut Problems) -> Option<Option<Decimal>> {
    let v = doc.encabezado.totales.as_ref()?.cred_ec.as_ref()?;
    match v {
        serde_json::Value::Bool(true) => Some(None),
        serde_json::Value::Bool(false) | serde_json::Value::Null => None,
        serde_json::Value::Number(n) => match n.to_string().parse::<Decimal>() {
            Ok(d) if d > Decimal::ZERO && d.fract().is_zero() => Some(Some(d)),
            _ => {
                p.push(
                    "Encabezado.Totales.CredEC",
                    "out-of-range",
                    "CredEC is true or a whole number of pesos above 0",
                );
                None
            }
        },
        _ => {
            p.push("Encabezado.Totales.CredEC", "wrong-type", "CredEC is true or an amount in pesos");
            None
        }
    }
}

fn unpriced(d: &Detalle) -> bool {
    d.prc_item.is_none() && d.monto_item.is_none()
}

/// A line's discount or surcharge from a percentage: the schema's amount (`MntImpType`) is a
/// positive integer, so one that rounds to nothing is refused rather than stated and not applied.
fn adjustment(v: Decimal, path: &str, p: &mut Problems) -> Decimal {
    if v.is_zero() {
        p.push(path, "out-of-range", "the percentage of this line rounds to 0: leave it out or raise it");
    }
    v
}

/// `adj`: the currency of a line's discount and surcharge amounts (an export's are whole units,
/// `MntImpType`, while its line amounts have 4 decimals).
fn line_amounts(
    i: usize,
    d: &Detalle,
    (cur, adj): (Currency, Currency),
    free: bool,
    signed: bool,
    p: &mut Problems,
) -> LineAmounts {
    let path = |f: &str| format!("Detalle[{i}].{f}");
    let qty = d.qty_item.unwrap_or(Decimal::ONE);
    if free && unpriced(d) {
        return LineAmounts { descuento_monto: None, recargo_monto: None, monto_item: Decimal::ZERO };
    }
    let mut monto = match (d.prc_item, d.monto_item) {
        (Some(prc), _) => cur.round(qty * prc),
        // A line with no price (a guía's free item, a text correction) states its amount directly.
        (None, Some(m)) if d.descuento_pct.is_none() && d.recargo_pct.is_none() => {
            return LineAmounts { descuento_monto: d.descuento_monto, recargo_monto: d.recargo_monto, monto_item: m };
        }
        (None, _) => {
            p.push(path("PrcItem"), "required", "PrcItem is required to compute the line amount");
            Decimal::ZERO
        }
    };
    let descuento = match (d.descuento_pct, d.descuento_monto) {
        (Some(pc), _) => Some(adjustment(adj.round(pct(monto, pc)), &path("DescuentoPct"), p)),
        (None, m) => m,
    };
    if let Some(x) = descuento {
        monto -= x;
    }
    let recargo = match (d.recargo_pct, d.recargo_monto) {
        (Some(pc), _) => Some(adjustment(adj.round(pct(monto, pc)), &path("RecargoPct"), p)),
        (None, m) => m,
    };
    if let Some(x) = recargo {
        monto += x;
    }
    if monto.is_sign_negative() && !monto.is_zero() && !signed {
        p.push(path("MontoItem"), "negative", format!("the line amount would be {monto}: discounts exceed the line"));
    }
    LineAmounts { descuento_monto: descuento, recargo_monto: recargo, monto_item: monto }
}

/// Computes every amount of `doc`. Errors name the input path.
pub fn compute(
    doc: &DocumentInput,
    tipo: TipoDte,
    table: &TaxTable,
    cur: Currency,
) -> Result<Computed, Vec<FieldError>> {
    let mut p = Problems::default();
    let free = priceless_allowed(doc, tipo);
    // A liquidación-factura's amounts may be negative (a settled nota de crédito, a charge).
    let signed = tipo == TipoDte::LiquidacionFactura;
    // An export is exempt as a whole, and its line discounts are whole units.
    let export = tipo.is_export();
    let adj = if export { Currency::Peso } else { cur };
    let lines: Vec<LineAmounts> =
        doc.detalle.iter().enumerate().map(|(i, d)| line_amounts(i, d, (cur, adj), free, signed, &mut p)).collect();
    if free && doc.detalle.iter().all(unpriced) && doc.dsc_rcg_global.is_empty() {
        // Nothing is sold: the SII expects only MntTotal 0.
        let totals = Totals { mnt_total: Decimal::ZERO, ..Totals::default() };
        return if p.is_empty() {
            Ok(Computed { lines, globals: vec![], comisiones: vec![], otr_lines: vec![], otr_globals: vec![], totals })
        } else {
            Err(p.0)
        };
    }

    // Buckets: taxed (net or gross), exempt, non-billable.
    let (mut afecto, mut exento, mut no_fact) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    // Deposits on returnable containers (IndExe 3): neither taxed nor exempt, added to the total
    // as GrntDep (Formato DTE v2.2, field 120).
    let mut deposito: Option<Decimal> = None;
    let mut has_afecto = false;
    for (d, l) in doc.detalle.iter().zip(&lines) {
        match d.ind_exe {
            None if !export => {
                afecto += l.monto_item;
                has_afecto = true;
            }
            None | Some(1) => exento += l.monto_item,
            Some(2) => no_fact += l.monto_item,
            Some(3) => *deposito.get_or_insert(Decimal::ZERO) += l.monto_item,
            Some(_) => {}
        }
    }
    // Gross line amounts: a boleta's by default, a DTE's with MntBruto 1.
    let gross = (tipo.is_boleta() && doc.encabezado.id_doc.ind_mnt_neto != Some(2))
        || (!tipo.is_boleta() && doc.encabezado.id_doc.mnt_bruto == Some(1));

    let mut globals = Vec::with_capacity(doc.dsc_rcg_global.len());
    for (i, g) in doc.dsc_rcg_global.iter().enumerate() {
        let bucket = match g.ind_exe_dr {
            _ if export => &mut exento,
            Some(1) => &mut exento,
            Some(2) => &mut no_fact,
            _ => &mut afecto,
        };
        let amount = match g.tpo_valor.as_str() {
            "%" => cur.round(pct(*bucket, g.valor_dr)),
            _ => g.valor_dr,
        };
        match g.tpo_mov.as_str() {
            "R" => *bucket += amount,
            _ => *bucket -= amount,
        }
        if bucket.is_sign_negative() && !bucket.is_zero() && !signed {
            p.push(format!("DscRcgGlobal[{i}].ValorDR"), "negative", "the discount exceeds the amount it applies to");
        }
        globals.push(amount);
    }

    let mut totals = Totals::default();
    // A liquidación-factura's IVA of each commission (set with its totals below).
    let mut comisiones = Vec::new();
    if gross {
        // SII boleta split: neto from the gross total, IVA as the remainder, never round(neto × 0.19).
        let divisor = Decimal::ONE + TASA_IVA / Decimal::ONE_HUNDRED;
        if has_afecto {
            let neto = cur.round(afecto / divisor);
            totals.mnt_neto = Some(neto);
            totals.iva = Some(afecto - neto);
        }
        if !exento.is_zero() || tipo.is_exempt() {
            totals.mnt_exe = Some(exento);
        }
        if !tipo.is_boleta() && has_afecto {
            totals.tasa_iva = Some(TASA_IVA);
        }
        totals.mnt_total = afecto + exento;
    } else {
        let mut total = exento;
        if has_afecto {
            let iva = cur.round(pct(afecto, TASA_IVA));
            totals.mnt_neto = Some(afecto);
            totals.tasa_iva = Some(TASA_IVA);
            totals.iva = Some(iva);
            total += afecto + iva;

            // Additional taxes and retentions, each on the lines that carry its code.
            let mut bases: BTreeMap<u16, Decimal> = BTreeMap::new();
            for (i, (d, l)) in doc.detalle.iter().zip(&lines).enumerate() {
                for (j, code) in d.cod_imp_adic.iter().enumerate() {
                    if table.0.contains_key(code) {
                        *bases.entry(*code).or_default() += l.monto_item;
                    } else {
                        p.push(
                            format!("Detalle[{i}].CodImpAdic[{j}]"),
                            "unknown-tax-code",
                            format!("tax code {code} is not in the tax table"),
                        );
                    }
                }
            }
            let mut retenido = Decimal::ZERO;
            let mut partial = false;
            for (code, base) in bases {
                let Some(tc) = table.0.get(&code) else { continue };
                // IVA anticipado on meat slaughter is a share of the slaughter base the issuer
                // informs (MntBase), not of the lines (Formato DTE v2.2, field 117).
                let base = match (code, doc.encabezado.totales.as_ref().and_then(|t| t.mnt_base)) {
                    (IVA_ANTICIPADO_FAENAMIENTO, Some(b)) => b,
                    _ => base,
                };
                // A code that withholds nothing (49, a factura de compra without retention) marks
                // its lines only: the schema has no ImptoReten of 0.
                if tc.rate.is_zero() {
                    continue;
                }
                let monto = cur.round(pct(base, tc.rate));
                if monto.is_zero() {
                    let line = doc.detalle.iter().position(|d| d.cod_imp_adic.contains(&code)).unwrap_or_default();
                    p.push(
                        format!("Detalle[{line}].CodImpAdic"),
                        "out-of-range",
                        format!("tax {code} on these lines rounds to 0; the SII's schema needs a positive amount"),
                    );
                }
                match tc.kind {
                    TaxKind::A => total += monto,
                    TaxKind::R => {
                        total -= monto;
                        retenido += monto;
                        partial |= code != IVA_RETENIDO_TOTAL;
                    }
                }
                totals.impto_reten.push(Retencion { tipo_imp: code, tasa_imp: tc.rate, monto_imp: monto });
            }
            if partial {
                totals.iva_no_ret = Some(iva - retenido);
            }
            if let Some(asked) = cred_ec(doc, &mut p) {
                let max = cur.round(iva * CRED_EC_RATE);
                let amount = asked.unwrap_or(max);
                if amount > max {
                    p.push(
                        "Encabezado.Totales.CredEC",
                        "out-of-range",
                        format!("CredEC is at most 65 % of the IVA: {max}"),
                    );
                }
                totals.cred_ec = Some(amount);
                total -= amount;
            }
        } else if doc.detalle.iter().any(|d| !d.cod_imp_adic.is_empty()) {
            p.push("Detalle", "tax-without-base", "additional taxes need a taxed (non-exempt) line");
        }
        if !has_afecto && cred_ec(doc, &mut Problems::default()).is_some() {
            p.push(
                "Encabezado.Totales.CredEC",
                "tax-without-base",
                "CredEC is a share of the IVA: it needs taxed lines",
            );
        }
        if !exento.is_zero() || !has_afecto {
            totals.mnt_exe = Some(exento);
        }
        if signed {
            let (ivas, c) = super::liquidacion::comisiones(doc, TASA_IVA);
            total -= c.sum();
            totals.comisiones = Some(c);
            comisiones = ivas;
        }
        totals.mnt_total = total;
    }
    if let Some(d) = deposito {
        totals.grnt_dep = Some(d);
        totals.mnt_total += d;
    }
    if let Some(t) = doc.encabezado.totales.as_ref() {
        totals.mnt_base = t.mnt_base;
        totals.mnt_margen_com = t.mnt_margen_com;
        if let (Some(terc), Some(iva)) = (t.iva_terc, totals.iva) {
            if terc > iva && !signed {
                p.push(
                    "Encabezado.Totales.IVATerc",
                    "out-of-range",
                    format!("the third party's IVA exceeds the IVA, {iva}"),
                );
            }
            totals.iva_terc = Some(terc);
            totals.iva_prop = Some(iva - terc);
        } else if t.iva_terc.is_some() {
            p.push(
                "Encabezado.Totales.IVATerc",
                "tax-without-base",
                "IVATerc is a share of the IVA: it needs taxed lines",
            );
        }
    }
    if !no_fact.is_zero() {
        totals.monto_nf = Some(no_fact);
        if !tipo.is_boleta() {
            totals.monto_periodo = Some(totals.mnt_total + no_fact);
        }
    }
    if export {
        totals.tpo_moneda = doc.encabezado.totales.as_ref().and_then(|t| t.tpo_moneda.clone());
    }
    let (otra, otr_lines, otr_globals) = match other_currency(doc, tipo, table, &totals, &globals, &mut p) {
        Some((o, lines, globals)) => (Some(o), lines, globals),
        None => (None, Vec::new(), Vec::new()),
    };
    totals.otra_moneda = otra;
    if totals.mnt_total.is_sign_negative() && !totals.mnt_total.is_zero() && !signed {
        p.push("Encabezado.Totales.MntTotal", "negative", format!("the total would be {}", totals.mnt_total));
    }
    if p.is_empty() {
        Ok(Computed { lines, globals, comisiones, otr_lines, otr_globals, totals })
    } else {
        Err(p.0)
    }
}

/// `OtraMoneda`, with each line and global discount in the other currency where they differ
/// from a conversion. An export's amounts are converted at the client's rate (units of the other
/// currency per unit of the operation currency), rounded once in that currency. A document in
/// pesos ([`super::otra_moneda`]) is computed again in the other currency when its lines are
/// priced in it, else each peso amount is divided by the rate once.
fn other_currency(
    doc: &DocumentInput,
    tipo: TipoDte,
    table: &TaxTable,
    t: &Totals,
    globals: &[Decimal],
    p: &mut Problems,
) -> Option<(OtraMonedaTotals, Vec<LineAmounts>, Vec<Decimal>)> {
    use super::otra_moneda::{from_pesos, priced_in_other};
    let o = doc.encabezado.otra_moneda.as_ref()?;
    let rate = o.tpo_cambio?;
    if tipo.is_export() {
        let into = Currency::of_moneda(&o.tpo_moneda);
        let conv = |v: Decimal| into.round(v * rate);
        return Some((converted(&o.tpo_moneda, rate, t, conv), Vec::new(), globals.iter().map(|g| conv(*g)).collect()));
    }
    let out = if priced_in_other(doc) {
        let mut view = doc.clone();
        view.encabezado.otra_moneda = None;
        // The declared totals (CredEC among them) are in pesos: the other currency has none.
        view.encabezado.totales = None;
        for d in &mut view.detalle {
            d.prc_item = d.otr_mnda.take().map(|m| m.prc_otr_mon);
        }
        let f = match compute(&view, tipo, table, Currency::Foreign) {
            Ok(f) => f,
            Err(errors) => {
                let moneda = &o.tpo_moneda;
                p.0.extend(
                    errors.into_iter().map(|e| FieldError { message: format!("in {moneda}: {}", e.message), ..e }),
                );
                return None;
            }
        };
        let totals = OtraMonedaTotals {
            tpo_moneda: o.tpo_moneda.clone(),
            tpo_cambio: rate,
            mnt_neto: f.totals.mnt_neto,
            mnt_exe: f.totals.mnt_exe,
            // Informed in pesos: converted once.
            mnt_fae_carne: t.mnt_base.map(|v| from_pesos(v, rate)),
            mnt_marg_com: t.mnt_margen_com.map(|v| from_pesos(v, rate)),
            iva: f.totals.iva,
            imp_ret: f.totals.impto_reten,
            iva_no_ret: f.totals.iva_no_ret,
            mnt_total: f.totals.mnt_total,
        };
        (totals, f.lines, f.globals)
    } else {
        let conv = |v: Decimal| from_pesos(v, rate);
        (converted(&o.tpo_moneda, rate, t, conv), Vec::new(), globals.iter().map(|g| conv(*g)).collect())
    };
    if out.0.mnt_total <= Decimal::ZERO {
        p.push(
            "Encabezado.OtraMoneda",
            "out-of-range",
            "the total in the other currency would be 0: the SII's schema needs a positive MntTotOtrMnda",
        );
    }
    Some(out)
}

/// The document's totals in another currency, each converted by `conv` (one rounding).
fn converted(moneda: &str, rate: Decimal, t: &Totals, conv: impl Fn(Decimal) -> Decimal) -> OtraMonedaTotals {
    OtraMonedaTotals {
        tpo_moneda: moneda.to_string(),
        tpo_cambio: rate,
        mnt_neto: t.mnt_neto.map(&conv),
        mnt_exe: t.mnt_exe.map(&conv),
        mnt_fae_carne: t.mnt_base.map(&conv),
        mnt_marg_com: t.mnt_margen_com.map(&conv),
        iva: t.iva.map(&conv),
        imp_ret: t.impto_reten.iter().map(|r| Retencion { monto_imp: conv(r.monto_imp), ..r.clone() }).collect(),
        iva_no_ret: t.iva_no_ret.map(&conv),
        mnt_total: conv(t.mnt_total),
    }
}

fn differs(p: &mut Problems, path: String, declared: Option<Decimal>, computed: Option<Decimal>) {
    // A declared 0 where the gateway computes nothing says the same (a nota that corrects text).
    if declared.is_some_and(|d| d.is_zero()) && computed.is_none() {
        return;
    }
    if let Some(d) = declared {
        if Some(d.normalize()) != computed.map(|c| c.normalize()) {
            let c = computed.map_or_else(|| "nothing".to_string(), |c| c.normalize().to_string());
            p.push(path, "mismatch", format!("declared {} but the gateway computes {c}", d.normalize()));
        }
    }
}

/// Every amount the client declared that differs from the computed one.
/// The largest amount the SII's schema takes (`MontoType`, `MntImpType`: 18 digits).
const MAX_AMOUNT: Decimal = Decimal::from_parts(0xA763_FFFF, 0x0DE0_B6B3, 0, false, 0);

/// Amounts the computation produced that the schema cannot hold: each line's amount and every
/// total. The inputs are each within their types, yet their products need not be.
/// An export's amounts: 14 integer digits and 4 decimals (DTE_v10.xsd, `Exportaciones`).
const MAX_EXPORT_AMOUNT: Decimal = Decimal::from_parts(0xA763_FFFF, 0x0DE0_B6B3, 0, false, 4);

pub fn check_ranges(c: &Computed, tipo: TipoDte) -> Vec<FieldError> {
    let mut out = Vec::new();
    let (max, digits) = if tipo.is_export() { (MAX_EXPORT_AMOUNT, 14) } else { (MAX_AMOUNT, 18) };
    let mut check = |path: String, v: Option<Decimal>| {
        if v.is_some_and(|v| v.abs().trunc() > max.trunc()) {
            out.push(FieldError::new(
                path,
                "out-of-range",
                format!("the amount has more than {digits} integer digits, the most the SII's schema takes"),
            ));
        }
    };
    for (i, l) in c.lines.iter().enumerate() {
        check(format!("Detalle[{i}].MontoItem"), Some(l.monto_item));
        check(format!("Detalle[{i}].DescuentoMonto"), l.descuento_monto);
        check(format!("Detalle[{i}].RecargoMonto"), l.recargo_monto);
    }
    for (i, g) in c.globals.iter().enumerate() {
        check(format!("DscRcgGlobal[{i}].ValorDR"), Some(*g));
    }
    let t = &c.totals;
    for (f, v) in [
        ("MntNeto", t.mnt_neto),
        ("MntExe", t.mnt_exe),
        ("IVA", t.iva),
        ("IVANoRet", t.iva_no_ret),
        ("MntTotal", Some(t.mnt_total)),
        ("MontoNF", t.monto_nf),
        ("MontoPeriodo", t.monto_periodo),
    ] {
        check(format!("Encabezado.Totales.{f}"), v);
    }
    for (i, r) in t.impto_reten.iter().enumerate() {
        check(format!("Encabezado.Totales.ImptoReten[{i}].MontoImp"), Some(r.monto_imp));
    }
    out
}

pub fn check_declared(doc: &DocumentInput, c: &Computed) -> Vec<FieldError> {
    let mut p = Problems::default();
    let priced = doc.detalle.iter().zip(&c.otr_lines).enumerate();
    for (i, m, l) in priced.filter_map(|(i, (d, l))| Some((i, d.otr_mnda.as_ref()?, l))) {
        let b = format!("Detalle[{i}].OtrMnda");
        differs(&mut p, format!("{b}.MontoItemOtrMnda"), m.monto_item_otr_mnda, Some(l.monto_item));
        differs(&mut p, format!("{b}.DctoOtrMnda"), m.dcto_otr_mnda, l.descuento_monto);
        differs(&mut p, format!("{b}.RecargoOtrMnda"), m.recargo_otr_mnda, l.recargo_monto);
    }
    for (i, (d, l)) in doc.detalle.iter().zip(&c.lines).enumerate() {
        differs(&mut p, format!("Detalle[{i}].MontoItem"), d.monto_item, Some(l.monto_item));
        if d.descuento_pct.is_some() {
            differs(&mut p, format!("Detalle[{i}].DescuentoMonto"), d.descuento_monto, l.descuento_monto);
        }
        if d.recargo_pct.is_some() {
            differs(&mut p, format!("Detalle[{i}].RecargoMonto"), d.recargo_monto, l.recargo_monto);
        }
    }
    if let Some(t) = &doc.encabezado.totales {
        let ct = &c.totals;
        let base = "Encabezado.Totales";
        differs(&mut p, format!("{base}.MntNeto"), t.mnt_neto, ct.mnt_neto);
        differs(&mut p, format!("{base}.MntExe"), t.mnt_exe, ct.mnt_exe.or(Some(Decimal::ZERO)));
        // The rate is the law's whether or not the document has taxed amounts.
        differs(&mut p, format!("{base}.TasaIVA"), t.tasa_iva, ct.tasa_iva.or(Some(TASA_IVA)));
        differs(&mut p, format!("{base}.IVA"), t.iva, ct.iva);
        differs(&mut p, format!("{base}.IVANoRet"), t.iva_no_ret, ct.iva_no_ret);
        differs(&mut p, format!("{base}.MntTotal"), t.mnt_total, Some(ct.mnt_total));
        differs(&mut p, format!("{base}.MontoNF"), t.monto_nf, ct.monto_nf.or(Some(Decimal::ZERO)));
        differs(&mut p, format!("{base}.MontoPeriodo"), t.monto_periodo, ct.monto_periodo);
        differs(&mut p, format!("{base}.GrntDep"), t.grnt_dep, ct.grnt_dep);
        differs(&mut p, format!("{base}.IVAProp"), t.iva_prop, ct.iva_prop);
        if let (Some(o), Some(co)) = (&doc.encabezado.otra_moneda, &ct.otra_moneda) {
            let base = "Encabezado.OtraMoneda";
            differs(&mut p, format!("{base}.MntNetoOtrMnda"), o.mnt_neto_otr_mnda, co.mnt_neto);
            differs(&mut p, format!("{base}.MntExeOtrMnda"), o.mnt_exe_otr_mnda, co.mnt_exe);
            differs(&mut p, format!("{base}.IVAOtrMnda"), o.iva_otr_mnda, co.iva);
            differs(&mut p, format!("{base}.MntTotOtrMnda"), o.mnt_tot_otr_mnda, Some(co.mnt_total));
        }
        for (i, r) in t.impto_reten.iter().enumerate() {
            let found = ct.impto_reten.iter().find(|x| x.tipo_imp == r.tipo_imp);
            match found {
                None => p.push(
                    format!("{base}.ImptoReten[{i}].TipoImp"),
                    "mismatch",
                    format!("tax {} does not apply to any line", r.tipo_imp),
                ),
                Some(f) => {
                    differs(&mut p, format!("{base}.ImptoReten[{i}].MontoImp"), Some(r.monto_imp), Some(f.monto_imp));
                    differs(&mut p, format!("{base}.ImptoReten[{i}].TasaImp"), r.tasa_imp, Some(f.tasa_imp));
                }
            }
        }
    }
    p.0
}

#[cfg(test)]
#[path = "tax_tests.rs"]
mod tests;
