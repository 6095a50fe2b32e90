//! The rules of each document type and the XSD limits of every field the input carries
//! (NOTES §10). A document that passes here renders into XML that the SII schema accepts.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::document::{parse_rut, scalar_text, DocumentInput, TipoDte};
use super::limits::{check_date, check_dec};
use super::rut::Rut;
use super::tax::{TaxKind, TaxTable, IVA_RETENIDO_TOTAL};
use super::text::{check, check_opt};
use crate::error::{DteError, Problems};

/// A document that passed every rule, with the defaults of its type applied.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub tipo: TipoDte,
    pub doc: DocumentInput,
    pub rut_recep: Rut,
}

fn check_pct(p: &mut Problems, path: &str, v: Option<Decimal>, max: Decimal) {
    if let Some(v) = v {
        check_dec(p, path, v, 3, 2, false);
        if v > max {
            p.push(path, "out-of-range", format!("at most {max}"));
        }
    }
}

impl Prepared {
    /// FchEmis, filled in by [`prepare`].
    pub fn fch_emis(&self) -> NaiveDate {
        self.doc.encabezado.id_doc.fch_emis.unwrap_or_default()
    }
}

/// Boletas above 135 UF (Ley 21.713; SII, Formato Boleta Electrónica v4.2 of 2025-09-08, fields
/// 10, 18, 19 and 20): the buyer is identified by its own RUT, internal code and name, and the
/// means of payment is stated. `uf`: the UF's value in pesos on the day of issue.
pub fn check_ley_21713(p: &Prepared, mnt_total: Decimal, uf: Decimal) -> Vec<crate::FieldError> {
    let limit = uf * Decimal::from(135);
    if !p.tipo.is_boleta() || mnt_total <= limit {
        return Vec::new();
    }
    let why = format!("a boleta above 135 UF ({limit:.0} pesos at a UF of {uf}) must, under Ley 21.713,");
    let mut out = Problems::default();
    let r = p.doc.encabezado.receptor.as_ref();
    if p.rut_recep == Rut::ANONYMOUS {
        out.push("Encabezado.Receptor.RUTRecep", "required", format!("{why} carry the buyer's own RUT"));
    }
    if r.and_then(|r| r.cdg_int_recep.as_ref()).is_none() {
        out.push("Encabezado.Receptor.CdgIntRecep", "required", format!("{why} carry the buyer's internal code"));
    }
    if r.and_then(|r| r.rzn_soc_recep.as_ref()).is_none() {
        out.push("Encabezado.Receptor.RznSocRecep", "required", format!("{why} carry the buyer's name"));
    }
    if p.doc.encabezado.id_doc.medio_pago.is_none() {
        out.push("Encabezado.IdDoc.MedioPago", "required", format!("{why} state the means of payment"));
    }
    out.0
}

/// Totals the issuer informs or that only some types carry (Formato DTE v2.2, fields 10 and
/// 109–120): gross prices (`MntBruto`), the meat-slaughter and margin bases, the third party's
/// IVA.
fn special_totals(doc: &DocumentInput, tipo: TipoDte, p: &mut Problems) {
    use TipoDte::*;
    let id = &doc.encabezado.id_doc;
    if let Some(v) = id.mnt_bruto {
        if v != 1 {
            p.push("Encabezado.IdDoc.MntBruto", "out-of-range", "MntBruto is 1 (amounts include IVA) or absent");
        } else if !matches!(tipo, Factura | FacturaExenta | NotaDebito | NotaCredito) {
            p.push(
                "Encabezado.IdDoc.MntBruto",
                "not-allowed",
                "MntBruto applies to facturas (33, 34) and notas (56, 61)",
            );
        }
        if doc.detalle.iter().any(|d| !d.cod_imp_adic.is_empty()) {
            p.push(
                "Encabezado.IdDoc.MntBruto",
                "not-allowed",
                "gross amounts are for documents without additional taxes",
            );
        }
    }
    let Some(t) = doc.encabezado.totales.as_ref() else { return };
    let b = "Encabezado.Totales";
    if id.mnt_bruto.is_some() && t.cred_ec.as_ref().is_some_and(|v| v != &serde_json::Value::Bool(false)) {
        p.push(format!("{b}.CredEC"), "not-allowed", "CredEC is computed on net amounts (no MntBruto)");
    }
    for (f, v) in [("MntBase", t.mnt_base), ("MntMargenCom", t.mnt_margen_com)] {
        if let Some(v) = v {
            check_dec(p, &format!("{b}.{f}"), v, 18, 0, f == "MntBase");
            if !matches!(tipo, Factura | GuiaDespacho | NotaDebito | NotaCredito) {
                p.push(format!("{b}.{f}"), "not-allowed", format!("{f} applies to 33, 52, 56 and 61"));
            }
        }
    }
    for (f, v) in [("IVATerc", t.iva_terc), ("IVAProp", t.iva_prop)] {
        if let Some(v) = v {
            if tipo == LiquidacionFactura {
                super::liquidacion::whole(p, format!("{b}.{f}"), v);
            } else {
                check_dec(p, &format!("{b}.{f}"), v, 18, 0, false);
            }
            if !matches!(tipo, Factura | GuiaDespacho | NotaDebito | NotaCredito | FacturaCompra | LiquidacionFactura) {
                p.push(format!("{b}.{f}"), "not-allowed", format!("{f} applies to 33, 43, 46, 52, 56 and 61"));
            }
        }
    }
    if t.iva_prop.is_some() && t.iva_terc.is_none() {
        p.push(format!("{b}.IVATerc"), "required", "IVAProp is computed from IVATerc (IVA = IVAProp + IVATerc)");
    }
}

/// The payment details of `IdDoc` (not on boletas, whose schema has none of them).
fn payments(doc: &DocumentInput, boleta: bool, p: &mut Problems) {
    let id = &doc.encabezado.id_doc;
    let b = "Encabezado.IdDoc";
    let any = id.mnt_cancel.is_some()
        || id.saldo_insol.is_some()
        || !id.mnt_pagos.is_empty()
        || id.tpo_cta_pago.is_some()
        || id.num_cta_pago.is_some()
        || id.bco_pago.is_some()
        || id.term_pago_cdg.is_some();
    if boleta && any {
        p.push(b, "not-allowed", "a boleta carries no payment details (MntCancel, SaldoInsol, MntPagos, TpoCtaPago, NumCtaPago, BcoPago, TermPagoCdg)");
    }
    for (f, v) in [("MntCancel", id.mnt_cancel), ("SaldoInsol", id.saldo_insol)] {
        if let Some(v) = v {
            check_dec(p, &format!("{b}.{f}"), v, 18, 0, false);
        }
    }
    if id.mnt_pagos.len() > 30 {
        p.push(format!("{b}.MntPagos"), "too-many", "at most 30 payments");
    }
    for (i, m) in id.mnt_pagos.iter().enumerate() {
        check_date(p, &format!("{b}.MntPagos[{i}].FchPago"), m.fch_pago);
        check_dec(p, &format!("{b}.MntPagos[{i}].MntPago"), m.mnt_pago, 18, 0, false);
        check_opt(p, &format!("{b}.MntPagos[{i}].GlosaPagos"), &m.glosa_pagos, 40);
    }
    if id.tpo_cta_pago.as_deref().is_some_and(|t| !matches!(t, "AHORRO" | "CORRIENTE" | "VISTA")) {
        p.push(format!("{b}.TpoCtaPago"), "out-of-range", "TpoCtaPago is AHORRO, CORRIENTE or VISTA");
    }
    check_opt(p, &format!("{b}.NumCtaPago"), &id.num_cta_pago, 20);
    check_opt(p, &format!("{b}.BcoPago"), &id.bco_pago, 40);
    check_opt(p, &format!("{b}.TermPagoCdg"), &id.term_pago_cdg, 4);
}

/// A RUT the rules read, to be written back in canonical form.
enum CanonicalRut {
    Trans,
    Chofer,
    Mandante,
    Solicita,
    Otr(usize),
}

/// Applies the rules; every violation is reported, not just the first.
pub fn prepare(mut doc: DocumentInput, emisor: Rut, table: &TaxTable, today: NaiveDate) -> Result<Prepared, DteError> {
    let mut p = Problems::default();
    let mut canonical: Vec<(CanonicalRut, Rut)> = Vec::new();
    let Some(tipo) = TipoDte::from_code(doc.encabezado.id_doc.tipo_dte) else {
        return Err(DteError::single(
            "Encabezado.IdDoc.TipoDTE",
            "unknown-type",
            format!(
                "TipoDTE {} is not one of 33, 34, 39, 41, 43, 46, 52, 56, 61, 110, 111, 112",
                doc.encabezado.id_doc.tipo_dte
            ),
        ));
    };
    // Exports first: they write the Aduana codes given by name as codes.
    super::exportacion::check(&mut doc, tipo, &mut p);
    let operation = doc.encabezado.totales.as_ref().and_then(|t| t.tpo_moneda.clone()).filter(|_| tipo.is_export());
    super::otra_moneda::check(&mut doc, tipo, operation.as_deref().unwrap_or("PESO CL"), &mut p);
    if let Some(x) = doc.encabezado.receptor.as_mut().and_then(|r| r.extranjero.as_mut()) {
        super::exportacion::code(
            &mut p,
            "Encabezado.Receptor.Extranjero.Nacionalidad",
            super::aduana::Table::Paises,
            &mut x.nacionalidad,
        );
    }
    let id = &doc.encabezado.id_doc;
    let fch_emis = id.fch_emis.unwrap_or(today);
    check_date(&mut p, "Encabezado.IdDoc.FchEmis", fch_emis);
    if let Some(f) = id.fch_venc {
        check_date(&mut p, "Encabezado.IdDoc.FchVenc", f);
    }
    if let Some(e) = &doc.encabezado.emisor {
        match parse_rut("Encabezado.Emisor.RUTEmisor", &e.rut_emisor) {
            Err(e) => p.0.push(e),
            Ok(r) if r != emisor => p.push(
                "Encabezado.Emisor.RUTEmisor",
                "emisor-mismatch",
                format!("the document is issued by {emisor}, not {r}"),
            ),
            Ok(_) => {}
        }
    }
    let boleta = tipo.is_boleta();
    let mut set_servicio = false;
    if boleta {
        match id.ind_servicio {
            None => set_servicio = true,
            Some(1..=4) => {}
            Some(_) => {
                p.push("Encabezado.IdDoc.IndServicio", "out-of-range", "IndServicio is 1, 2, 3 or 4 for boletas")
            }
        }
        if id.ind_mnt_neto.is_some_and(|v| v != 2) {
            p.push("Encabezado.IdDoc.IndMntNeto", "out-of-range", "IndMntNeto is 2 (net prices) or absent");
        }
    } else {
        if !tipo.is_export() && id.ind_servicio.is_some_and(|v| !(1..=3).contains(&v)) {
            p.push("Encabezado.IdDoc.IndServicio", "out-of-range", "IndServicio is 1, 2 or 3");
        }
        if id.ind_mnt_neto.is_some() {
            p.push("Encabezado.IdDoc.IndMntNeto", "not-allowed", "IndMntNeto applies to boletas only");
        }
    }
    if id.fma_pago.is_some_and(|v| !(1..=3).contains(&v)) {
        p.push("Encabezado.IdDoc.FmaPago", "out-of-range", "FmaPago is 1, 2 or 3");
    }
    if id.tipo_despacho.is_some_and(|v| !(1..=3).contains(&v)) {
        p.push("Encabezado.IdDoc.TipoDespacho", "out-of-range", "TipoDespacho is 1, 2 or 3");
    }
    check_opt(&mut p, "Encabezado.IdDoc.TermPagoGlosa", &id.term_pago_glosa, 100);
    super::liquidacion::check(&doc, tipo, super::tax::TASA_IVA, &mut p);
    super::informative::check_all(&doc, tipo, &mut p);
    payments(&doc, boleta, &mut p);
    for (f, v) in [("RUTMandante", &doc.encabezado.rut_mandante), ("RUTSolicita", &doc.encabezado.rut_solicita)] {
        if let Some(r) = v {
            if boleta || tipo == TipoDte::LiquidacionFactura {
                p.push(format!("Encabezado.{f}"), "not-allowed", format!("a {} carries no {f}", tipo.name()));
            } else if let Err(e) = parse_rut(&format!("Encabezado.{f}"), r) {
                p.0.push(e);
            } else if let Ok(rut) = parse_rut("", r) {
                canonical.push((if f == "RUTMandante" { CanonicalRut::Mandante } else { CanonicalRut::Solicita }, rut));
            }
        }
    }
    // The SII's format gives CredEC to facturas, guías and notas (33, 52, 56, 61) only.
    let cred_ec = doc
        .encabezado
        .totales
        .as_ref()
        .and_then(|t| t.cred_ec.as_ref())
        .is_some_and(|v| v != &serde_json::Value::Bool(false));
    if cred_ec && !matches!(tipo, TipoDte::Factura | TipoDte::GuiaDespacho | TipoDte::NotaDebito | TipoDte::NotaCredito)
    {
        p.push(
            "Encabezado.Totales.CredEC",
            "not-allowed",
            "CredEC applies to facturas (33), guías (52) and notas (56, 61) only",
        );
    }
    special_totals(&doc, tipo, &mut p);
    if let Some(m) = &id.medio_pago {
        let (ok, codes) = if boleta {
            (
                matches!(m.as_str(), "1" | "2" | "3" | "4" | "5"),
                "1 efectivo, 2 pago electrónico, 3 transferencia, 4 cheque, 5 otro",
            )
        } else {
            (matches!(m.as_str(), "CH" | "LT" | "EF" | "PE" | "TC" | "CF" | "OT"), "CH, LT, EF, PE, TC, CF or OT")
        };
        if !ok {
            p.push("Encabezado.IdDoc.MedioPago", "out-of-range", format!("MedioPago is {codes}"));
        }
    }
    if let Some(g) = &doc.geo_ref_emision {
        if !boleta {
            p.push("GeoRefEmision", "not-allowed", "GeoRefEmision is a boleta's");
        }
        for (f, v) in [("LatitudEmision", &g.latitud_emision), ("LongitudEmision", &g.longitud_emision)] {
            check(&mut p, &format!("GeoRefEmision.{f}"), v, 1, 30);
            if v.parse::<f64>().is_err() {
                p.push(format!("GeoRefEmision.{f}"), "wrong-type", "decimal degrees, e.g. -33.4378");
            }
        }
        if g.sistema_referencia != 1 {
            p.push("GeoRefEmision.SistemaReferencia", "out-of-range", "SistemaReferencia is 1 (WGS84)");
        }
    }
    match (tipo, id.ind_traslado) {
        (TipoDte::GuiaDespacho, None) => {
            p.push("Encabezado.IdDoc.IndTraslado", "required", "a guía de despacho needs IndTraslado (1-9)")
        }
        (_, Some(v)) if !(1..=9).contains(&v) => {
            p.push("Encabezado.IdDoc.IndTraslado", "out-of-range", "IndTraslado is 1 to 9")
        }
        _ => {}
    }

    doc.encabezado.id_doc.fch_emis = Some(fch_emis);
    if set_servicio {
        // Boletas must state IndServicio; 3 (ventas y servicios) is the common case.
        doc.encabezado.id_doc.ind_servicio = Some(3);
    }

    // Receptor: required except on boletas, where the anonymous consumer stands in.
    let rut_recep = match doc.encabezado.receptor.as_ref().and_then(|r| r.rut_recep.as_deref()) {
        Some(s) => parse_rut("Encabezado.Receptor.RUTRecep", s).map_err(|e| p.0.push(e)).ok(),
        None if boleta => Some(Rut::ANONYMOUS),
        None => {
            p.push("Encabezado.Receptor.RUTRecep", "required", "the receptor's RUT is required");
            None
        }
    };
    if let Some(r) = &doc.encabezado.receptor {
        let b = "Encabezado.Receptor";
        match &r.rzn_soc_recep {
            Some(v) => check(&mut p, &format!("{b}.RznSocRecep"), v, 1, 100),
            None if !boleta => p.push(format!("{b}.RznSocRecep"), "required", "the receptor's name is required"),
            None => {}
        }
        check_opt(&mut p, &format!("{b}.CdgIntRecep"), &r.cdg_int_recep, 20);
        check_opt(&mut p, &format!("{b}.GiroRecep"), &r.giro_recep, 40);
        check_opt(&mut p, &format!("{b}.Contacto"), &r.contacto, 80);
        check_opt(&mut p, &format!("{b}.CorreoRecep"), &r.correo_recep, 80);
        check_opt(&mut p, &format!("{b}.DirRecep"), &r.dir_recep, 70);
        check_opt(&mut p, &format!("{b}.CmnaRecep"), &r.cmna_recep, 20);
        check_opt(&mut p, &format!("{b}.CiudadRecep"), &r.ciudad_recep, 20);
        check_opt(&mut p, &format!("{b}.DirPostal"), &r.dir_postal, 70);
        check_opt(&mut p, &format!("{b}.CmnaPostal"), &r.cmna_postal, 20);
        check_opt(&mut p, &format!("{b}.CiudadPostal"), &r.ciudad_postal, 20);
        if boleta && r.giro_recep.is_some() {
            p.push(b, "not-allowed", "a boleta's Receptor has no GiroRecep");
        }
        match &r.telefono_recep {
            Some(_) if !boleta => {
                p.push(format!("{b}.TelefonoRecep"), "not-allowed", "TelefonoRecep is a boleta's (use Contacto)")
            }
            v => check_opt(&mut p, &format!("{b}.TelefonoRecep"), v, 20),
        }
        if let Some(x) = &r.extranjero {
            if boleta {
                p.push(format!("{b}.Extranjero"), "not-allowed", "a boleta's Receptor has no Extranjero");
            }
            if let Some(id) = &x.num_id {
                check(&mut p, &format!("{b}.Extranjero.NumId"), id, 1, 20);
            }
            check_opt(&mut p, &format!("{b}.Extranjero.IdAdicRecep"), &x.id_adic_recep, 20);
            if x.id_adic_recep.is_some() && !tipo.is_export() {
                p.push(
                    format!("{b}.Extranjero.IdAdicRecep"),
                    "not-allowed",
                    "IdAdicRecep is an export's (110, 111, 112)",
                );
            }
        }
    } else if !boleta {
        p.push("Encabezado.Receptor", "required", "the receptor is required");
    }
    if let Some(t) = &doc.encabezado.transporte {
        let b = "Encabezado.Transporte";
        if boleta {
            p.push(b, "not-allowed", "boletas carry no Transporte");
        }
        check_opt(&mut p, &format!("{b}.Patente"), &t.patente, 8);
        check_opt(&mut p, &format!("{b}.DirDest"), &t.dir_dest, 70);
        check_opt(&mut p, &format!("{b}.CmnaDest"), &t.cmna_dest, 20);
        check_opt(&mut p, &format!("{b}.CiudadDest"), &t.ciudad_dest, 20);
        if let Some(r) = &t.rut_trans {
            match parse_rut(&format!("{b}.RUTTrans"), r) {
                Ok(rut) => canonical.push((CanonicalRut::Trans, rut)),
                Err(e) => p.0.push(e),
            }
        }
        if let Some(c) = &t.chofer {
            match parse_rut(&format!("{b}.Chofer.RUTChofer"), &c.rut_chofer) {
                Ok(rut) => canonical.push((CanonicalRut::Chofer, rut)),
                Err(e) => p.0.push(e),
            }
            check(&mut p, &format!("{b}.Chofer.NombreChofer"), &c.nombre_chofer, 1, 30);
        }
    }

    // Detalle.
    let max_lines = if boleta { 1000 } else { 60 };
    if doc.detalle.is_empty() {
        p.push("Detalle", "required", "at least one Detalle line is required");
    } else if doc.detalle.len() > max_lines {
        p.push("Detalle", "too-many", format!("{} lines; the SII allows at most {max_lines}", doc.detalle.len()));
    }
    let hundred = Decimal::ONE_HUNDRED;
    for (i, d) in doc.detalle.iter_mut().enumerate() {
        let b = format!("Detalle[{i}]");
        if d.nro_lin_det.is_some_and(|n| n as usize != i + 1) {
            p.push(format!("{b}.NroLinDet"), "mismatch", format!("line numbers run from 1; this is line {}", i + 1));
        }
        check(&mut p, &format!("{b}.NmbItem"), &d.nmb_item, 1, 80);
        check_opt(&mut p, &format!("{b}.DscItem"), &d.dsc_item, 1000);
        check_opt(&mut p, &format!("{b}.UnmdItem"), &d.unmd_item, 4);
        check_opt(&mut p, &format!("{b}.UnmdRef"), &d.unmd_ref, 4);
        for (f, v) in [("QtyRef", d.qty_ref), ("PrcRef", d.prc_ref)] {
            if let Some(v) = v {
                check_dec(&mut p, &format!("{b}.{f}"), v, 12, 6, false);
            }
        }
        for (f, v) in [("FchElabor", d.fch_elabor), ("FchVencim", d.fch_vencim)] {
            if let Some(v) = v {
                check_date(&mut p, &format!("{b}.{f}"), v);
            }
        }
        if boleta
            && (d.qty_ref.is_some()
                || d.unmd_ref.is_some()
                || d.prc_ref.is_some()
                || d.fch_elabor.is_some()
                || d.fch_vencim.is_some())
        {
            p.push(
                b.clone(),
                "not-allowed",
                "a boleta's Detalle has no QtyRef, UnmdRef, PrcRef, FchElabor or FchVencim",
            );
        }
        if d.cdg_item.len() > 5 {
            p.push(format!("{b}.CdgItem"), "too-many", "at most 5 item codes");
        }
        for (j, c) in d.cdg_item.iter().enumerate() {
            check(&mut p, &format!("{b}.CdgItem[{j}].TpoCodigo"), &c.tpo_codigo, 1, 10);
            check(&mut p, &format!("{b}.CdgItem[{j}].VlrCodigo"), &c.vlr_codigo, 1, 35);
        }
        // Boletas: Dec5Type-like amounts; DTE: Dec12_6Type (18 digits, 6 decimals).
        if let Some(q) = d.qty_item {
            check_dec(&mut p, &format!("{b}.QtyItem"), q, 12, 6, true);
        }
        if let Some(v) = d.prc_item {
            check_dec(&mut p, &format!("{b}.PrcItem"), v, 12, 6, false);
        }
        check_pct(&mut p, &format!("{b}.DescuentoPct"), d.descuento_pct, hundred);
        check_pct(
            &mut p,
            &format!("{b}.RecargoPct"),
            d.recargo_pct,
            if boleta { hundred } else { Decimal::new(99999, 2) },
        );
        for (f, v) in
            [("DescuentoMonto", d.descuento_monto), ("RecargoMonto", d.recargo_monto), ("MontoItem", d.monto_item)]
        {
            if let Some(v) = v {
                // A liquidación-factura settles notas de crédito too: its line amounts may be negative.
                if tipo == TipoDte::LiquidacionFactura && f == "MontoItem" {
                    super::liquidacion::whole(&mut p, format!("{b}.{f}"), v);
                } else if tipo.is_export() && f == "MontoItem" {
                    // An export's line amount has 4 decimals in its currency (14 integer digits).
                    check_dec(&mut p, &format!("{b}.{f}"), v, 14, 4, false);
                } else {
                    check_dec(&mut p, &format!("{b}.{f}"), v, 18, 0, false);
                }
            }
        }
        match d.ind_exe {
            None | Some(1) | Some(2) => {}
            // A deposit on returnable containers (GrntDep), on facturas and their notas.
            Some(3)
                if matches!(
                    tipo,
                    TipoDte::Factura | TipoDte::FacturaExenta | TipoDte::NotaDebito | TipoDte::NotaCredito
                ) => {}
            Some(_) => p.push(
                format!("{b}.IndExe"),
                "unsupported",
                "IndExe is 1 (exento), 2 (no facturable) or, on 33, 34, 56 and 61, 3 (deposit on containers)",
            ),
        }
        if tipo.is_exempt() {
            match d.ind_exe {
                None => d.ind_exe = Some(1),
                Some(1) | Some(2) => {}
                Some(_) => {}
            }
        }
        if d.cod_imp_adic.len() > 2 {
            p.push(format!("{b}.CodImpAdic"), "too-many", "at most 2 tax codes per line");
        }
        if !d.cod_imp_adic.is_empty() && (boleta || tipo.is_exempt() || d.ind_exe.is_some()) {
            p.push(
                format!("{b}.CodImpAdic"),
                "not-allowed",
                "additional taxes apply to taxed lines of facturas and notas only",
            );
        }
        // A factura de compra withholds the seller's IVA: total retention unless a partial one is named.
        if tipo == TipoDte::FacturaCompra && d.ind_exe.is_none() {
            let has_retention = d.cod_imp_adic.iter().any(|c| table.0.get(c).is_some_and(|t| t.kind == TaxKind::R));
            if !has_retention {
                d.cod_imp_adic.push(IVA_RETENIDO_TOTAL);
            }
        }
    }
    if tipo == TipoDte::Factura && !doc.detalle.is_empty() && doc.detalle.iter().all(|d| d.ind_exe.is_some()) {
        p.push(
            "Detalle",
            "no-taxed-line",
            "a factura (33) needs at least one taxed line; use type 34 for exempt sales",
        );
    }

    if doc.dsc_rcg_global.len() > 20 {
        p.push("DscRcgGlobal", "too-many", "at most 20 global discounts or surcharges");
    }
    for (i, g) in doc.dsc_rcg_global.iter().enumerate() {
        let b = format!("DscRcgGlobal[{i}]");
        if g.nro_lin_dr.is_some_and(|n| n as usize != i + 1) {
            p.push(format!("{b}.NroLinDR"), "mismatch", format!("numbers run from 1; this is {}", i + 1));
        }
        if !matches!(g.tpo_mov.as_str(), "D" | "R") {
            p.push(format!("{b}.TpoMov"), "out-of-range", "TpoMov is D (descuento) or R (recargo)");
        }
        if !matches!(g.tpo_valor.as_str(), "%" | "$") {
            p.push(format!("{b}.TpoValor"), "out-of-range", "TpoValor is % or $");
        }
        check_opt(&mut p, &format!("{b}.GlosaDR"), &g.glosa_dr, 45);
        check_dec(&mut p, &format!("{b}.ValorDR"), g.valor_dr, 16, 2, false);
        if g.tpo_valor == "%" && g.valor_dr > hundred {
            p.push(format!("{b}.ValorDR"), "out-of-range", "a percentage is at most 100");
        }
        if g.ind_exe_dr.is_some_and(|v| !(1..=2).contains(&v)) {
            p.push(format!("{b}.IndExeDR"), "out-of-range", "IndExeDR is 1 or 2");
        }
    }

    let max_refs = 40;
    if doc.referencia.len() > max_refs {
        p.push("Referencia", "too-many", "at most 40 references");
    }
    for (i, r) in doc.referencia.iter().enumerate() {
        let b = format!("Referencia[{i}]");
        if r.nro_lin_ref.is_some_and(|n| n as usize != i + 1) {
            p.push(format!("{b}.NroLinRef"), "mismatch", format!("numbers run from 1; this is {}", i + 1));
        }
        match scalar_text(&r.tpo_doc_ref) {
            Some(t) => check(&mut p, &format!("{b}.TpoDocRef"), &t, 1, 3),
            None => p.push(format!("{b}.TpoDocRef"), "wrong-type", "a document type code (e.g. 33 or SET)"),
        }
        match scalar_text(&r.folio_ref) {
            Some(t) => check(&mut p, &format!("{b}.FolioRef"), &t, 1, 18),
            None => p.push(format!("{b}.FolioRef"), "wrong-type", "a folio (number or text)"),
        }
        match r.fch_ref {
            Some(f) => check_date(&mut p, &format!("{b}.FchRef"), f),
            None if !boleta => p.push(format!("{b}.FchRef"), "required", "the referenced document's date is required"),
            None => {}
        }
        check_opt(&mut p, &format!("{b}.RazonRef"), &r.razon_ref, 90);
        check_opt(&mut p, &format!("{b}.IdAdicOtr"), &r.id_adic_otr, 20);
        if r.id_adic_otr.is_some() && !tipo.is_export() {
            p.push(format!("{b}.IdAdicOtr"), "not-allowed", "IdAdicOtr is an export's (110, 111, 112)");
        }
        if r.cod_ref.is_some_and(|c| !(1..=3).contains(&c)) {
            p.push(
                format!("{b}.CodRef"),
                "out-of-range",
                "CodRef is 1 (anula), 2 (corrige texto) or 3 (corrige montos)",
            );
        }
        if r.ind_global.is_some_and(|v| v != 1) {
            p.push(format!("{b}.IndGlobal"), "out-of-range", "IndGlobal is 1 or absent");
        }
        if let Some(o) = &r.rut_otr {
            match parse_rut(&format!("{b}.RUTOtr"), o) {
                Ok(rut) => canonical.push((CanonicalRut::Otr(i), rut)),
                Err(e) => p.0.push(e),
            }
        }
    }
    if matches!(tipo, TipoDte::NotaDebito | TipoDte::NotaCredito) && !doc.referencia.iter().any(|r| r.cod_ref.is_some())
    {
        p.push(
            "Referencia",
            "required",
            "a nota de crédito or débito needs a Referencia with CodRef to the document it modifies",
        );
    }

    p.into_result()?;
    // RUTs are written in canonical form whatever form the client used.
    for (field, rut) in canonical {
        match field {
            CanonicalRut::Trans => {
                if let Some(t) = doc.encabezado.transporte.as_mut() {
                    t.rut_trans = Some(rut.to_string());
                }
            }
            CanonicalRut::Mandante => doc.encabezado.rut_mandante = Some(rut.to_string()),
            CanonicalRut::Solicita => doc.encabezado.rut_solicita = Some(rut.to_string()),
            CanonicalRut::Chofer => {
                if let Some(c) = doc.encabezado.transporte.as_mut().and_then(|t| t.chofer.as_mut()) {
                    c.rut_chofer = rut.to_string();
                }
            }
            CanonicalRut::Otr(i) => doc.referencia[i].rut_otr = Some(rut.to_string()),
        }
    }
    let rut_recep = rut_recep.unwrap_or(Rut::ANONYMOUS);
    Ok(Prepared { tipo, doc, rut_recep })
}
