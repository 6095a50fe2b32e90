//! The liquidación-factura (43), issued by a commission agent to the consignor it sold for. Its
//! lines are the sales settled (each with the type of the document it was sold with,
//! `TpoDocLiq`), and its `Comisiones` are the agent's commissions and other charges, subtracted
//! from the total: MntTotal = MntNeto + MntExe + IVA + additional taxes − ValComNeto − ValComExe
//! − ValComIVA (SII, Formato de los Documentos Tributarios Electrónicos v2.2, field 124 and §F).
//! Its amounts may be negative (a settled nota de crédito), and it has no global discounts, line
//! discounts or transport (the format's fields 29–36 and the `Liquidacion` element of
//! DTE_v10.xsd).

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::document::{DocumentInput, TipoDte};
use super::limits::check_dec;
use crate::error::Problems;

/// At most this many commission lines (DTE_v10.xsd).
const MAX_COMISIONES: usize = 20;

/// The sums of `Totales/Comisiones`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct ComisionesTotales {
    #[serde(rename = "ValComNeto")]
    pub val_com_neto: Decimal,
    #[serde(rename = "ValComExe")]
    pub val_com_exe: Decimal,
    #[serde(rename = "ValComIVA")]
    pub val_com_iva: Decimal,
}

impl ComisionesTotales {
    pub fn sum(&self) -> Decimal {
        self.val_com_neto + self.val_com_exe + self.val_com_iva
    }
}

/// Whole pesos of up to 18 digits, of either sign (a 43's amounts may be negative).
pub fn whole(p: &mut Problems, path: String, v: Decimal) {
    check_dec(p, &path, v.abs(), 18, 0, false);
}

/// The IVA of a commission: the one given, else round(ValComNeto × `tasa` %).
pub fn iva_of(neto: Decimal, given: Option<Decimal>, tasa: Decimal) -> Decimal {
    given.unwrap_or_else(|| {
        (neto * tasa / Decimal::ONE_HUNDRED).round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
    })
}

/// The commissions' IVA (at `tasa` %) per line and their sums.
pub fn comisiones(doc: &DocumentInput, tasa: Decimal) -> (Vec<Decimal>, ComisionesTotales) {
    let mut t = ComisionesTotales::default();
    let ivas: Vec<Decimal> = doc
        .comisiones
        .iter()
        .map(|c| {
            let iva = iva_of(c.val_com_neto, c.val_com_iva, tasa);
            t.val_com_neto += c.val_com_neto;
            t.val_com_exe += c.val_com_exe;
            t.val_com_iva += iva;
            iva
        })
        .collect();
    (ivas, t)
}

/// The rules of a 43 (commissions' IVA at `tasa` %), and that no other type carries what is a 43's.
pub fn check(doc: &DocumentInput, tipo: TipoDte, tasa: Decimal, p: &mut Problems) {
    if tipo != TipoDte::LiquidacionFactura {
        if !doc.comisiones.is_empty() {
            p.push("Comisiones", "not-allowed", "Comisiones belong to a liquidación-factura (43)");
        }
        for (i, d) in doc.detalle.iter().enumerate() {
            if d.tpo_doc_liq.is_some() {
                p.push(
                    format!("Detalle[{i}].TpoDocLiq"),
                    "not-allowed",
                    "TpoDocLiq belongs to a liquidación-factura (43)",
                );
            }
        }
        return;
    }
    if doc.comisiones.is_empty() {
        p.push(
            "Comisiones",
            "required",
            "a liquidación-factura needs its Comisiones (the agent's commission and other charges)",
        );
    } else if doc.comisiones.len() > MAX_COMISIONES {
        p.push("Comisiones", "too-many", format!("at most {MAX_COMISIONES} commission lines"));
    }
    for (i, c) in doc.comisiones.iter().enumerate() {
        let b = format!("Comisiones[{i}]");
        if c.nro_lin_com.is_some_and(|n| n as usize != i + 1) {
            p.push(format!("{b}.NroLinCom"), "mismatch", format!("numbers run from 1; this is {}", i + 1));
        }
        if !matches!(c.tipo_movim.as_str(), "C" | "O") {
            p.push(format!("{b}.TipoMovim"), "out-of-range", "TipoMovim is C (comisión) or O (otros cargos)");
        }
        super::text::check(p, &format!("{b}.Glosa"), &c.glosa, 1, 60);
        if let Some(t) = c.tasa_comision {
            if t <= Decimal::ZERO || t >= Decimal::from(1000) || t.normalize().scale() > 2 {
                p.push(format!("{b}.TasaComision"), "out-of-range", "a percentage from 0.01 to 999.99");
            }
        }
        whole(p, format!("{b}.ValComNeto"), c.val_com_neto);
        whole(p, format!("{b}.ValComExe"), c.val_com_exe);
        if let Some(v) = c.val_com_iva {
            whole(p, format!("{b}.ValComIVA"), v);
            let computed = iva_of(c.val_com_neto, None, tasa);
            if v != computed {
                p.push(
                    format!("{b}.ValComIVA"),
                    "mismatch",
                    format!("declared {v} but 19 % of ValComNeto is {computed}"),
                );
            }
        }
    }
    for (i, d) in doc.detalle.iter().enumerate() {
        let b = format!("Detalle[{i}]");
        match &d.tpo_doc_liq {
            None => p.push(format!("{b}.TpoDocLiq"), "required", "each line names the type of the document it settles"),
            Some(t) if t.is_empty() || t.len() > 3 || !t.bytes().all(|c| c.is_ascii_alphanumeric()) => p.push(
                format!("{b}.TpoDocLiq"),
                "out-of-range",
                "a document type code of 1 to 3 characters (33, 61, 99…)",
            ),
            Some(_) => {}
        }
        if d.descuento_pct.is_some()
            || d.descuento_monto.is_some()
            || d.recargo_pct.is_some()
            || d.recargo_monto.is_some()
        {
            p.push(b.clone(), "not-allowed", "a liquidación-factura's lines have no discounts or surcharges");
        }
    }
    if !doc.dsc_rcg_global.is_empty() {
        p.push("DscRcgGlobal", "not-allowed", "a liquidación-factura has no global discounts or surcharges");
    }
    if doc.encabezado.transporte.is_some() {
        p.push("Encabezado.Transporte", "not-allowed", "a liquidación-factura has no Transporte");
    }
    let id = &doc.encabezado.id_doc;
    for (f, set) in [
        ("IndNoRebaja", id.ind_no_rebaja.is_some()),
        ("TipoDespacho", id.tipo_despacho.is_some()),
        ("IndTraslado", id.ind_traslado.is_some()),
        ("TpoImpresion", id.tpo_impresion.is_some()),
    ] {
        if set {
            p.push(format!("Encabezado.IdDoc.{f}"), "not-allowed", format!("a liquidación-factura has no {f}"));
        }
    }
    if doc.encabezado.receptor.as_ref().is_some_and(|r| r.extranjero.is_some()) {
        p.push("Encabezado.Receptor.Extranjero", "not-allowed", "a liquidación-factura's Receptor has no Extranjero");
    }
}
