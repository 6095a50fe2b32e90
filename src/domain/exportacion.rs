//! Export documents: the factura de exportación (110) and its notas de débito (111) and crédito
//! (112), the `Exportaciones` element of DTE_v10.xsd. An export is exempt: its Totales carry only
//! the operation currency (`TpoMoneda`, the Aduana's currency names of SiiTypes_v10.xsd
//! `TipMonType`), `MntExe` and `MntTotal`, with up to 4 decimals; `OtraMoneda` gives the total in
//! another currency (usually PESO CL) at the exchange rate the client states. The customs data
//! (`Transporte/Aduana`) and the receptor's nationality are Aduana codes ([`super::aduana`]),
//! which the input may also give by name.

use rust_decimal::Decimal;

pub use super::aduana::{Aduana, TipoBultos};
use super::aduana::{LookupError, Table};
use super::document::{parse_rut, DocumentInput, TipoDte};
use super::limits::check_dec;
use super::tax::Currency;
use super::text::check_opt;
use crate::error::Problems;

/// The currency an export's amounts are computed in (its `Totales/TpoMoneda`).
pub fn operation_currency(doc: &DocumentInput, tipo: TipoDte) -> Currency {
    match doc.encabezado.totales.as_ref().and_then(|t| t.tpo_moneda.as_deref()) {
        Some(m) if tipo.is_export() => Currency::of_moneda(m),
        _ => Currency::Peso,
    }
}

/// Replaces a code-or-name by the Aduana code, or reports why it cannot be.
pub fn code(p: &mut Problems, path: &str, table: Table, v: &mut Option<String>) {
    let Some(given) = v.as_deref() else { return };
    match table.find(given) {
        Ok(row) => *v = Some(row.code.to_string()),
        Err(e) => {
            let why = match e {
                LookupError::UnknownCode => format!("{given} is not an Aduana {} code", table.what()),
                LookupError::UnknownName => format!("{given:?} is not the name of an Aduana {}", table.what()),
                LookupError::Ambiguous(codes) => {
                    format!("{given:?} names more than one {} ({codes:?}); give the code", table.what())
                }
            };
            p.push(path, "unknown-code", why);
        }
    }
}

/// The rules of an export; codes given by name are replaced by their codes. For other types,
/// that nothing of an export is present.
pub fn check(doc: &mut DocumentInput, tipo: TipoDte, p: &mut Problems) {
    let enc = &mut doc.encabezado;
    if !tipo.is_export() {
        // A guía may take goods to be exported: the schema gives its Documento the customs data.
        let guia = tipo == TipoDte::GuiaDespacho;
        if let Some(a) = enc.transporte.as_mut().and_then(|t| t.aduana.as_mut()) {
            if guia {
                aduana(p, a);
            } else {
                p.push(
                    "Encabezado.Transporte.Aduana",
                    "not-allowed",
                    "Aduana belongs to exports (110, 111, 112) and guías de despacho (52)",
                );
            }
        }
        if guia {
            code(p, "Encabezado.IdDoc.FmaPagExp", Table::FormaPagoExportacion, &mut enc.id_doc.fma_pag_exp);
        } else if enc.id_doc.fma_pag_exp.is_some() {
            p.push(
                "Encabezado.IdDoc.FmaPagExp",
                "not-allowed",
                "FmaPagExp belongs to exports (110, 111, 112) and guías de despacho (52)",
            );
        }
        if enc.totales.as_ref().is_some_and(|t| t.tpo_moneda.is_some()) {
            p.push(
                "Encabezado.Totales.TpoMoneda",
                "not-allowed",
                "TpoMoneda belongs to exports (110, 111, 112); other documents give OtraMoneda",
            );
        }
        return;
    }
    let id = &mut enc.id_doc;
    for (f, set) in [
        ("IndNoRebaja", id.ind_no_rebaja.is_some()),
        ("IndTraslado", id.ind_traslado.is_some()),
        ("TpoImpresion", id.tpo_impresion.is_some()),
        ("TpoTranCompra", id.tpo_tran_compra.is_some()),
        ("TpoTranVenta", id.tpo_tran_venta.is_some()),
    ] {
        if set {
            p.push(format!("Encabezado.IdDoc.{f}"), "not-allowed", format!("an export has no {f}"));
        }
    }
    if id.ind_servicio.is_some_and(|v| !(3..=5).contains(&v)) {
        p.push(
            "Encabezado.IdDoc.IndServicio",
            "out-of-range",
            "an export's IndServicio is 3 (services), 4 (hotel services to foreign tourists) or 5 (international transport)",
        );
    }
    code(p, "Encabezado.IdDoc.FmaPagExp", Table::FormaPagoExportacion, &mut id.fma_pag_exp);
    for (f, set) in [("RUTMandante", enc.rut_mandante.is_some()), ("RUTSolicita", enc.rut_solicita.is_some())] {
        if set {
            p.push(format!("Encabezado.{f}"), "not-allowed", format!("an export has no {f}"));
        }
    }
    if let Some(a) = enc.transporte.as_mut().and_then(|t| t.aduana.as_mut()) {
        aduana(p, a);
    }
    match enc.totales.as_mut().and_then(|t| t.tpo_moneda.as_mut()) {
        Some(m) => super::aduana::moneda(p, "Encabezado.Totales.TpoMoneda", m),
        None => p.push(
            "Encabezado.Totales.TpoMoneda",
            "required",
            "an export names its operation currency (TpoMoneda: DOLAR USA, EURO…)",
        ),
    }
    if let Some(t) = enc.totales.as_ref() {
        for (f, set) in [
            ("MntNeto", t.mnt_neto.is_some()),
            ("TasaIVA", t.tasa_iva.is_some()),
            ("IVA", t.iva.is_some()),
            ("ImptoReten", !t.impto_reten.is_empty()),
            ("IVANoRet", t.iva_no_ret.is_some()),
            ("CredEC", t.cred_ec.is_some()),
            ("MontoNF", t.monto_nf.is_some()),
            ("MontoPeriodo", t.monto_periodo.is_some()),
        ] {
            if set {
                p.push(
                    format!("Encabezado.Totales.{f}"),
                    "not-allowed",
                    format!("an export is exempt: it carries no {f} (only TpoMoneda, MntExe and MntTotal)"),
                );
            }
        }
    }
    for (i, d) in doc.detalle.iter().enumerate() {
        let b = format!("Detalle[{i}]");
        if !d.cod_imp_adic.is_empty() {
            p.push(format!("{b}.CodImpAdic"), "not-allowed", "an export is exempt: its lines carry no taxes");
        }
        if d.retenedor.is_some() {
            p.push(format!("{b}.Retenedor"), "not-allowed", "an export's lines have no Retenedor");
        }
        if d.ind_exe.is_some_and(|v| v != 1) {
            p.push(format!("{b}.IndExe"), "out-of-range", "an export's lines are exempt (IndExe 1 or absent)");
        }
    }
    for (i, g) in doc.dsc_rcg_global.iter().enumerate() {
        if g.ind_exe_dr.is_some_and(|v| v != 1) {
            p.push(format!("DscRcgGlobal[{i}].IndExeDR"), "out-of-range", "an export's amounts are all exempt");
        }
    }
    if matches!(tipo, TipoDte::NotaDebitoExportacion | TipoDte::NotaCreditoExportacion)
        && !doc.referencia.iter().any(|r| r.cod_ref.is_some())
    {
        p.push(
            "Referencia",
            "required",
            "an export nota needs a Referencia with CodRef to the document it modifies (110, 111 or 112)",
        );
    }
}

fn aduana(p: &mut Problems, a: &mut Aduana) {
    let b = "Encabezado.Transporte.Aduana";
    code(p, &format!("{b}.CodModVenta"), Table::ModalidadVenta, &mut a.cod_mod_venta);
    code(p, &format!("{b}.CodClauVenta"), Table::ClausulaVenta, &mut a.cod_clau_venta);
    code(p, &format!("{b}.CodViaTransp"), Table::ViaTransporte, &mut a.cod_via_transp);
    code(p, &format!("{b}.CodPtoEmbarque"), Table::Puertos, &mut a.cod_pto_embarque);
    code(p, &format!("{b}.CodPtoDesemb"), Table::Puertos, &mut a.cod_pto_desemb);
    code(p, &format!("{b}.CodUnidMedTara"), Table::Unidades, &mut a.cod_unid_med_tara);
    code(p, &format!("{b}.CodUnidPesoBruto"), Table::Unidades, &mut a.cod_unid_peso_bruto);
    code(p, &format!("{b}.CodUnidPesoNeto"), Table::Unidades, &mut a.cod_unid_peso_neto);
    code(p, &format!("{b}.CodPaisRecep"), Table::Paises, &mut a.cod_pais_recep);
    code(p, &format!("{b}.CodPaisDestin"), Table::Paises, &mut a.cod_pais_destin);
    if let Some(v) = a.tot_clau_venta {
        check_dec(p, &format!("{b}.TotClauVenta"), v, 16, 2, true);
    }
    for (f, v) in [("MntFlete", a.mnt_flete), ("MntSeguro", a.mnt_seguro)] {
        if let Some(v) = v {
            check_dec(p, &format!("{b}.{f}"), v, 14, 4, true);
        }
    }
    for (f, v) in [("PesoBruto", a.peso_bruto), ("PesoNeto", a.peso_neto)] {
        if let Some(v) = v {
            check_dec(p, &format!("{b}.{f}"), v, 8, 2, false);
        }
    }
    for (f, v, digits) in [("Tara", a.tara, 7), ("TotItems", a.tot_items, 18), ("TotBultos", a.tot_bultos, 18)] {
        if let Some(v) = v {
            check_dec(p, &format!("{b}.{f}"), Decimal::from(v), digits, 0, true);
        }
    }
    for (f, v, max) in [
        ("NombreTransp", &a.nombre_transp, 40),
        ("NomCiaTransp", &a.nom_cia_transp, 40),
        ("IdAdicTransp", &a.id_adic_transp, 20),
        ("Booking", &a.booking, 20),
        ("Operador", &a.operador, 20),
        ("IdAdicPtoEmb", &a.id_adic_pto_emb, 20),
        ("IdAdicPtoDesemb", &a.id_adic_pto_desemb, 20),
    ] {
        check_opt(p, &format!("{b}.{f}"), v, max);
    }
    if let Some(r) = &a.rut_cia_transp {
        match parse_rut(&format!("{b}.RUTCiaTransp"), r) {
            Ok(rut) => a.rut_cia_transp = Some(rut.to_string()),
            Err(e) => p.0.push(e),
        }
    }
    if a.tipo_bultos.len() > 10 {
        p.push(format!("{b}.TipoBultos"), "too-many", "at most 10 kinds of package");
    }
    for (i, t) in a.tipo_bultos.iter_mut().enumerate() {
        let tb = format!("{b}.TipoBultos[{i}]");
        code(p, &format!("{tb}.CodTpoBultos"), Table::TiposBulto, &mut t.cod_tpo_bultos);
        if let Some(v) = t.cant_bultos {
            check_dec(p, &format!("{tb}.CantBultos"), Decimal::from(v), 10, 0, true);
        }
        for (f, v, max) in [
            ("Marcas", &t.marcas, 255),
            ("IdContainer", &t.id_container, 25),
            ("Sello", &t.sello, 20),
            ("EmisorSello", &t.emisor_sello, 70),
        ] {
            check_opt(p, &format!("{tb}.{f}"), v, max);
        }
    }
}
