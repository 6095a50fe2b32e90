//! Elements a document shows but the gateway does not compute with: subtotals (`SubTotInfo`), a
//! line's quantity by code (`Subcantidad`), the breakdown of its discount or surcharge
//! (`SubDscto`, `SubRecargo`) and the withholding agent's bases (`Retenedor`). Checked against
//! DTE_v10.xsd's limits; the types whose schema lacks them refuse them.

use rust_decimal::Decimal;

use super::document::{DocumentInput, TipoDte};
use super::limits::check_dec;
use super::text::check;
use crate::error::Problems;

/// A line's discount or surcharge broken down: at most 5, each `%` or `$` and its value.
fn breakdown(p: &mut Problems, base: &str, (tf, vf): (&str, &str), items: &[(&String, Decimal)]) {
    if items.len() > 5 {
        p.push(base, "too-many", "at most 5");
    }
    for (j, (t, v)) in items.iter().enumerate() {
        if !matches!(t.as_str(), "%" | "$") {
            p.push(format!("{base}[{j}].{tf}"), "out-of-range", format!("{tf} is % or $"));
        }
        check_dec(p, &format!("{base}[{j}].{vf}"), *v, 16, 2, false);
    }
}

pub fn check_all(doc: &DocumentInput, tipo: TipoDte, p: &mut Problems) {
    let boleta = tipo.is_boleta();
    let liq = tipo == TipoDte::LiquidacionFactura;
    if boleta && !doc.sub_tot_info.is_empty() {
        p.push("SubTotInfo", "not-allowed", "SubTotInfo is taken on DTE and liquidaciones-factura");
    }
    if doc.sub_tot_info.len() > 20 {
        p.push("SubTotInfo", "too-many", "at most 20 subtotals");
    }
    for (i, s) in doc.sub_tot_info.iter().enumerate() {
        let b = format!("SubTotInfo[{i}]");
        if s.nro_sti.is_some_and(|n| n as usize != i + 1) {
            p.push(format!("{b}.NroSTI"), "mismatch", format!("numbers run from 1; this is {}", i + 1));
        }
        check(p, &format!("{b}.GlosaSTI"), &s.glosa_sti, 1, 40);
        if s.orden_sti.is_some_and(|o| !(1..=99).contains(&o)) {
            p.push(format!("{b}.OrdenSTI"), "out-of-range", "OrdenSTI is 1 to 99");
        }
        for (f, v) in [
            ("SubTotNetoSTI", s.sub_tot_neto_sti),
            ("SubTotIVASTI", s.sub_tot_iva_sti),
            ("SubTotAdicSTI", s.sub_tot_adic_sti),
            ("SubTotExeSTI", s.sub_tot_exe_sti),
            ("ValSubtotSTI", s.val_subtot_sti),
        ] {
            if let Some(v) = v {
                check_dec(p, &format!("{b}.{f}"), v, 16, 2, false);
            }
        }
        if s.lineas_deta.len() > 60 {
            p.push(format!("{b}.LineasDeta"), "too-many", "at most 60 lines");
        }
        for (j, l) in s.lineas_deta.iter().enumerate() {
            if *l == 0 || *l as usize > doc.detalle.len() {
                p.push(
                    format!("{b}.LineasDeta[{j}]"),
                    "out-of-range",
                    format!("line {l} is not a line of the document"),
                );
            }
        }
    }
    for (i, d) in doc.detalle.iter().enumerate() {
        let b = format!("Detalle[{i}]");
        if boleta && (!d.subcantidad.is_empty() || !d.sub_dscto.is_empty() || !d.sub_recargo.is_empty()) {
            p.push(b.clone(), "not-allowed", "a boleta's Detalle has no Subcantidad, SubDscto or SubRecargo");
        }
        if liq && (!d.sub_dscto.is_empty() || !d.sub_recargo.is_empty()) {
            p.push(b.clone(), "not-allowed", "a liquidación-factura's lines have no SubDscto or SubRecargo");
        }
        if d.retenedor.is_some() && (boleta || liq) {
            p.push(format!("{b}.Retenedor"), "not-allowed", format!("a {} has no Retenedor", tipo.name()));
        }
        if d.subcantidad.len() > 5 {
            p.push(format!("{b}.Subcantidad"), "too-many", "at most 5");
        }
        for (j, s) in d.subcantidad.iter().enumerate() {
            check_dec(p, &format!("{b}.Subcantidad[{j}].SubQty"), s.sub_qty, 12, 6, true);
            check(p, &format!("{b}.Subcantidad[{j}].SubCod"), &s.sub_cod, 1, 35);
            super::text::check_opt(p, &format!("{b}.Subcantidad[{j}].TipCodSubQty"), &s.tip_cod_sub_qty, 10);
            if s.tip_cod_sub_qty.is_some() && !tipo.is_export() {
                p.push(
                    format!("{b}.Subcantidad[{j}].TipCodSubQty"),
                    "not-allowed",
                    "TipCodSubQty is an export's (110, 111, 112)",
                );
            }
        }
        let dscto: Vec<(&String, Decimal)> = d.sub_dscto.iter().map(|s| (&s.tipo_dscto, s.valor_dscto)).collect();
        let recargo: Vec<(&String, Decimal)> =
            d.sub_recargo.iter().map(|s| (&s.tipo_recargo, s.valor_recargo)).collect();
        breakdown(p, &format!("{b}.SubDscto"), ("TipoDscto", "ValorDscto"), &dscto);
        breakdown(p, &format!("{b}.SubRecargo"), ("TipoRecargo", "ValorRecargo"), &recargo);
        if let Some(r) = &d.retenedor {
            if r.ind_agente != "R" {
                p.push(format!("{b}.Retenedor.IndAgente"), "out-of-range", "IndAgente is R (the issuer withholds)");
            }
            for (f, v) in [
                ("MntBaseFaena", r.mnt_base_faena),
                ("MntMargComer", r.mnt_marg_comer),
                ("PrcConsFinal", r.prc_cons_final),
            ] {
                if let Some(v) = v {
                    check_dec(p, &format!("{b}.Retenedor.{f}"), v, 18, 0, false);
                }
            }
        }
    }
}
