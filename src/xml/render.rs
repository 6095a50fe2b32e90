//! Renders a prepared document as the `<Documento>` element, in the XSD's element order
//! (DTE_v10.xsd for DTE, EnvioBOLETA_v11.xsd for boletas), already in canonical form.

use rust_decimal::Decimal;

use super::writer::XmlOut;
use crate::domain::document::scalar_text;
use crate::domain::rules::Prepared;
use crate::domain::tax::Computed;
use crate::domain::Company;

fn n(d: Decimal) -> Decimal {
    d.normalize()
}

fn positive(d: Option<Decimal>) -> Option<Decimal> {
    d.filter(|v| *v > Decimal::ZERO).map(n)
}

/// The `ID` of a Documento: `F{folio}T{tipo}`, the form of the SII's own example.
pub fn documento_id(tipo: u16, folio: u64) -> String {
    format!("F{folio}T{tipo}")
}

/// Everything inside `<Documento ID=…>` up to and including the TED and TmstFirma.
/// `prov_sw`: the software provider's RUT, written in a boleta (`RUTProvSW`, EnvioBOLETA_v11).
pub fn documento_body(
    p: &Prepared,
    c: &Company,
    comp: &Computed,
    folio: u64,
    ted: &str,
    tmst: &str,
    prov_sw: Option<&str>,
) -> String {
    let boleta = p.tipo.is_boleta();
    // A liquidación-factura is a `Liquidacion`, whose sequence lacks some of a Documento's elements.
    let liq = p.tipo == crate::domain::TipoDte::LiquidacionFactura;
    let doc = &p.doc;
    let id = &doc.encabezado.id_doc;
    let mut o = XmlOut::with_capacity(4096);
    o.start("Encabezado");
    o.start("IdDoc");
    o.leaf_display("TipoDTE", p.tipo.code());
    o.leaf_display("Folio", folio);
    o.leaf_display("FchEmis", p.fch_emis());
    if boleta {
        o.leaf_display_opt("IndServicio", id.ind_servicio);
        o.leaf_display_opt("IndMntNeto", id.ind_mnt_neto);
        o.leaf_display_opt("PeriodoDesde", id.periodo_desde);
        o.leaf_display_opt("PeriodoHasta", id.periodo_hasta);
        o.leaf_display_opt("FchVenc", id.fch_venc);
        o.leaf_opt("MedioPago", id.medio_pago.as_deref());
    } else {
        if !liq {
            o.leaf_display_opt("IndNoRebaja", id.ind_no_rebaja);
            o.leaf_display_opt("TipoDespacho", id.tipo_despacho);
            o.leaf_display_opt("IndTraslado", id.ind_traslado);
            o.leaf_opt("TpoImpresion", id.tpo_impresion.as_deref());
        }
        o.leaf_display_opt("IndServicio", id.ind_servicio);
        o.leaf_display_opt("MntBruto", id.mnt_bruto);
        o.leaf_display_opt("TpoTranCompra", id.tpo_tran_compra);
        o.leaf_display_opt("TpoTranVenta", id.tpo_tran_venta);
        o.leaf_display_opt("FmaPago", id.fma_pago);
        o.leaf_opt("FmaPagExp", id.fma_pag_exp.as_deref());
        o.leaf_display_opt("FchCancel", id.fch_cancel);
        o.leaf_display_opt("MntCancel", id.mnt_cancel.map(n));
        o.leaf_display_opt("SaldoInsol", id.saldo_insol.map(n));
        for m in &id.mnt_pagos {
            o.start("MntPagos");
            o.leaf_display("FchPago", m.fch_pago);
            o.leaf_display("MntPago", n(m.mnt_pago));
            o.leaf_opt("GlosaPagos", m.glosa_pagos.as_deref());
            o.end("MntPagos");
        }
        o.leaf_display_opt("PeriodoDesde", id.periodo_desde);
        o.leaf_display_opt("PeriodoHasta", id.periodo_hasta);
        o.leaf_opt("MedioPago", id.medio_pago.as_deref());
        o.leaf_opt("TpoCtaPago", id.tpo_cta_pago.as_deref());
        o.leaf_opt("NumCtaPago", id.num_cta_pago.as_deref());
        o.leaf_opt("BcoPago", id.bco_pago.as_deref());
        o.leaf_opt("TermPagoCdg", id.term_pago_cdg.as_deref());
        o.leaf_opt("TermPagoGlosa", id.term_pago_glosa.as_deref());
        o.leaf_display_opt("TermPagoDias", id.term_pago_dias);
        o.leaf_display_opt("FchVenc", id.fch_venc);
    }
    o.end("IdDoc");

    o.start("Emisor");
    o.leaf("RUTEmisor", &c.rut_emisor);
    if boleta {
        o.leaf("RznSocEmisor", &c.rzn_soc);
        o.leaf("GiroEmisor", &c.giro_emis);
        o.leaf_display_opt("CdgSIISucur", c.cdg_sii_sucur);
    } else {
        o.leaf("RznSoc", &c.rzn_soc);
        o.leaf("GiroEmis", &c.giro_emis);
        o.leaf_opt("Telefono", c.telefono.as_deref());
        o.leaf_opt("CorreoEmisor", c.correo_emisor.as_deref());
        for a in &c.acteco {
            o.leaf_display("Acteco", a);
        }
        o.leaf_opt("Sucursal", c.sucursal.as_deref());
        o.leaf_display_opt("CdgSIISucur", c.cdg_sii_sucur);
    }
    o.leaf("DirOrigen", &c.dir_origen);
    o.leaf("CmnaOrigen", &c.cmna_origen);
    o.leaf_opt("CiudadOrigen", c.ciudad_origen.as_deref());
    o.end("Emisor");
    if !boleta && !liq {
        o.leaf_opt("RUTMandante", doc.encabezado.rut_mandante.as_deref());
    }

    o.start("Receptor");
    o.leaf_display("RUTRecep", p.rut_recep);
    if let Some(r) = &doc.encabezado.receptor {
        o.leaf_opt("CdgIntRecep", r.cdg_int_recep.as_deref());
        o.leaf_opt("RznSocRecep", r.rzn_soc_recep.as_deref());
        if let Some(x) = r.extranjero.as_ref().filter(|_| !boleta && !liq) {
            o.start("Extranjero");
            o.leaf_opt("NumId", x.num_id.as_deref());
            o.leaf_opt("Nacionalidad", x.nacionalidad.as_deref());
            o.leaf_opt("IdAdicRecep", x.id_adic_recep.as_deref());
            o.end("Extranjero");
        }
        if !boleta {
            o.leaf_opt("GiroRecep", r.giro_recep.as_deref());
        }
        o.leaf_opt("Contacto", r.contacto.as_deref());
        o.leaf_opt("CorreoRecep", r.correo_recep.as_deref());
        if boleta {
            o.leaf_opt("TelefonoRecep", r.telefono_recep.as_deref());
        }
        o.leaf_opt("DirRecep", r.dir_recep.as_deref());
        o.leaf_opt("CmnaRecep", r.cmna_recep.as_deref());
        o.leaf_opt("CiudadRecep", r.ciudad_recep.as_deref());
        o.leaf_opt("DirPostal", r.dir_postal.as_deref());
        o.leaf_opt("CmnaPostal", r.cmna_postal.as_deref());
        o.leaf_opt("CiudadPostal", r.ciudad_postal.as_deref());
    }
    o.end("Receptor");
    if !boleta && !liq {
        o.leaf_opt("RUTSolicita", doc.encabezado.rut_solicita.as_deref());
    }
    if boleta {
        o.leaf_opt("RUTProvSW", prov_sw);
    }

    if let Some(t) = &doc.encabezado.transporte {
        o.start("Transporte");
        o.leaf_opt("Patente", t.patente.as_deref());
        o.leaf_opt("RUTTrans", t.rut_trans.as_deref());
        if let Some(c) = &t.chofer {
            o.start("Chofer");
            o.leaf("RUTChofer", &c.rut_chofer);
            o.leaf("NombreChofer", &c.nombre_chofer);
            o.end("Chofer");
        }
        o.leaf_opt("DirDest", t.dir_dest.as_deref());
        o.leaf_opt("CmnaDest", t.cmna_dest.as_deref());
        o.leaf_opt("CiudadDest", t.ciudad_dest.as_deref());
        if let Some(a) = &t.aduana {
            aduana(&mut o, a);
        }
        o.end("Transporte");
    }

    let t = &comp.totals;
    o.start("Totales");
    o.leaf_opt("TpoMoneda", t.tpo_moneda.as_deref());
    o.leaf_display_opt("MntNeto", t.mnt_neto.map(n));
    o.leaf_display_opt("MntExe", t.mnt_exe.map(n));
    o.leaf_display_opt("MntBase", t.mnt_base.map(n));
    o.leaf_display_opt("MntMargenCom", t.mnt_margen_com.map(n));
    if !boleta {
        o.leaf_display_opt("TasaIVA", t.tasa_iva.map(n));
    }
    o.leaf_display_opt("IVA", t.iva.map(n));
    o.leaf_display_opt("IVAProp", t.iva_prop.map(n));
    o.leaf_display_opt("IVATerc", t.iva_terc.map(n));
    if !boleta {
        for r in &t.impto_reten {
            o.start("ImptoReten");
            o.leaf_display("TipoImp", r.tipo_imp);
            o.leaf_display("TasaImp", n(r.tasa_imp));
            o.leaf_display("MontoImp", n(r.monto_imp));
            o.end("ImptoReten");
        }
        if let Some(c) = &t.comisiones {
            o.start("Comisiones");
            o.leaf_display("ValComNeto", n(c.val_com_neto));
            o.leaf_display("ValComExe", n(c.val_com_exe));
            o.leaf_display("ValComIVA", n(c.val_com_iva));
            o.end("Comisiones");
        } else {
            o.leaf_display_opt("IVANoRet", t.iva_no_ret.map(n));
            o.leaf_display_opt("CredEC", t.cred_ec.map(n));
            o.leaf_display_opt("GrntDep", t.grnt_dep.map(n));
        }
    }
    o.leaf_display("MntTotal", n(t.mnt_total));
    if !liq {
        o.leaf_display_opt("MontoNF", t.monto_nf.map(n));
    }
    if !boleta {
        o.leaf_display_opt("MontoPeriodo", t.monto_periodo.map(n));
    }
    o.end("Totales");
    if let Some(m) = &t.otra_moneda {
        o.start("OtraMoneda");
        o.leaf("TpoMoneda", &m.tpo_moneda);
        o.leaf_display("TpoCambio", n(m.tpo_cambio));
        // The schema's amounts in another currency start at 0.0001: a zero is left out.
        o.leaf_display_opt("MntNetoOtrMnda", positive(m.mnt_neto));
        o.leaf_display_opt("MntExeOtrMnda", positive(m.mnt_exe));
        o.leaf_display_opt("MntFaeCarneOtrMnda", positive(m.mnt_fae_carne));
        o.leaf_display_opt("MntMargComOtrMnda", positive(m.mnt_marg_com));
        o.leaf_display_opt("IVAOtrMnda", positive(m.iva));
        for r in &m.imp_ret {
            o.start("ImpRetOtrMnda");
            o.leaf_display("TipoImpOtrMnda", r.tipo_imp);
            o.leaf_display("TasaImpOtrMnda", n(r.tasa_imp));
            o.leaf_display("VlrImpOtrMnda", n(r.monto_imp));
            o.end("ImpRetOtrMnda");
        }
        o.leaf_display_opt("IVANoRetOtrMnda", positive(m.iva_no_ret));
        o.leaf_display("MntTotOtrMnda", n(m.mnt_total));
        o.end("OtraMoneda");
    }
    o.end("Encabezado");

    for (i, (d, a)) in doc.detalle.iter().zip(&comp.lines).enumerate() {
        o.start("Detalle");
        o.leaf_display("NroLinDet", i + 1);
        for cdg in &d.cdg_item {
            o.start("CdgItem");
            o.leaf("TpoCodigo", &cdg.tpo_codigo);
            o.leaf("VlrCodigo", &cdg.vlr_codigo);
            o.end("CdgItem");
        }
        if liq {
            o.leaf_opt("TpoDocLiq", d.tpo_doc_liq.as_deref());
        }
        o.leaf_display_opt("IndExe", d.ind_exe);
        if let Some(r) = d.retenedor.as_ref().filter(|_| !boleta && !liq) {
            o.start("Retenedor");
            o.leaf("IndAgente", &r.ind_agente);
            o.leaf_display_opt("MntBaseFaena", r.mnt_base_faena.map(n));
            o.leaf_display_opt("MntMargComer", r.mnt_marg_comer.map(n));
            o.leaf_display_opt("PrcConsFinal", r.prc_cons_final.map(n));
            o.end("Retenedor");
        }
        o.leaf("NmbItem", &d.nmb_item);
        o.leaf_opt("DscItem", d.dsc_item.as_deref());
        o.leaf_display_opt("QtyRef", d.qty_ref.map(n));
        o.leaf_opt("UnmdRef", d.unmd_ref.as_deref());
        o.leaf_display_opt("PrcRef", d.prc_ref.map(n));
        o.leaf_display_opt("QtyItem", d.qty_item.map(n));
        for s in d.subcantidad.iter().filter(|_| !boleta) {
            o.start("Subcantidad");
            o.leaf_display("SubQty", n(s.sub_qty));
            o.leaf("SubCod", &s.sub_cod);
            o.leaf_opt("TipCodSubQty", s.tip_cod_sub_qty.as_deref());
            o.end("Subcantidad");
        }
        o.leaf_display_opt("FchElabor", d.fch_elabor);
        o.leaf_display_opt("FchVencim", d.fch_vencim);
        o.leaf_opt("UnmdItem", d.unmd_item.as_deref());
        o.leaf_display_opt("PrcItem", d.prc_item.map(n));
        if let (Some(m), Some(l)) = (&d.otr_mnda, comp.otr_lines.get(i)) {
            o.start("OtrMnda");
            o.leaf_display("PrcOtrMon", n(m.prc_otr_mon));
            o.leaf("Moneda", m.moneda.as_deref().unwrap_or_default());
            o.leaf_display_opt("FctConv", m.fct_conv.map(n));
            o.leaf_display_opt("DctoOtrMnda", positive(l.descuento_monto));
            o.leaf_display_opt("RecargoOtrMnda", positive(l.recargo_monto));
            o.leaf_display_opt("MontoItemOtrMnda", positive(Some(l.monto_item)));
            o.end("OtrMnda");
        }
        o.leaf_display_opt("DescuentoPct", d.descuento_pct.map(n));
        o.leaf_display_opt("DescuentoMonto", positive(a.descuento_monto));
        for s in d.sub_dscto.iter().filter(|_| !boleta && !liq) {
            o.start("SubDscto");
            o.leaf("TipoDscto", &s.tipo_dscto);
            o.leaf_display("ValorDscto", n(s.valor_dscto));
            o.end("SubDscto");
        }
        o.leaf_display_opt("RecargoPct", d.recargo_pct.map(n));
        o.leaf_display_opt("RecargoMonto", positive(a.recargo_monto));
        for s in d.sub_recargo.iter().filter(|_| !boleta && !liq) {
            o.start("SubRecargo");
            o.leaf("TipoRecargo", &s.tipo_recargo);
            o.leaf_display("ValorRecargo", n(s.valor_recargo));
            o.end("SubRecargo");
        }
        if !boleta {
            for code in &d.cod_imp_adic {
                o.leaf_display("CodImpAdic", code);
            }
        }
        o.leaf_display("MontoItem", n(a.monto_item));
        o.end("Detalle");
    }

    for (i, s) in doc.sub_tot_info.iter().enumerate().filter(|_| !boleta) {
        o.start("SubTotInfo");
        o.leaf_display("NroSTI", i + 1);
        o.leaf("GlosaSTI", &s.glosa_sti);
        o.leaf_display_opt("OrdenSTI", s.orden_sti);
        o.leaf_display_opt("SubTotNetoSTI", s.sub_tot_neto_sti.map(n));
        o.leaf_display_opt("SubTotIVASTI", s.sub_tot_iva_sti.map(n));
        o.leaf_display_opt("SubTotAdicSTI", s.sub_tot_adic_sti.map(n));
        o.leaf_display_opt("SubTotExeSTI", s.sub_tot_exe_sti.map(n));
        o.leaf_display_opt("ValSubtotSTI", s.val_subtot_sti.map(n));
        for l in &s.lineas_deta {
            o.leaf_display("LineasDeta", l);
        }
        o.end("SubTotInfo");
    }
    for (i, g) in doc.dsc_rcg_global.iter().enumerate() {
        o.start("DscRcgGlobal");
        o.leaf_display("NroLinDR", i + 1);
        o.leaf("TpoMov", &g.tpo_mov);
        o.leaf_opt("GlosaDR", g.glosa_dr.as_deref());
        o.leaf("TpoValor", &g.tpo_valor);
        o.leaf_display("ValorDR", n(g.valor_dr));
        o.leaf_display_opt("ValorDROtrMnda", positive(comp.otr_globals.get(i).copied()));
        o.leaf_display_opt("IndExeDR", g.ind_exe_dr);
        o.end("DscRcgGlobal");
    }

    for (i, r) in doc.referencia.iter().enumerate() {
        o.start("Referencia");
        o.leaf_display("NroLinRef", i + 1);
        let tpo = scalar_text(&r.tpo_doc_ref).unwrap_or_default();
        let folio_ref = scalar_text(&r.folio_ref).unwrap_or_default();
        o.leaf("TpoDocRef", &tpo);
        if boleta {
            o.leaf("FolioRef", &folio_ref);
            o.leaf_display_opt("CodRef", r.cod_ref);
        } else {
            o.leaf_display_opt("IndGlobal", r.ind_global);
            o.leaf("FolioRef", &folio_ref);
            o.leaf_opt("RUTOtr", r.rut_otr.as_deref());
            o.leaf_opt("IdAdicOtr", r.id_adic_otr.as_deref());
            o.leaf_display_opt("FchRef", r.fch_ref);
            o.leaf_display_opt("CodRef", r.cod_ref);
        }
        o.leaf_opt("RazonRef", r.razon_ref.as_deref());
        o.end("Referencia");
    }

    for (i, (c, iva)) in doc.comisiones.iter().zip(&comp.comisiones).enumerate().filter(|_| liq) {
        o.start("Comisiones");
        o.leaf_display("NroLinCom", i + 1);
        o.leaf("TipoMovim", &c.tipo_movim);
        o.leaf("Glosa", &c.glosa);
        o.leaf_display_opt("TasaComision", c.tasa_comision.map(n));
        o.leaf_display("ValComNeto", n(c.val_com_neto));
        o.leaf_display("ValComExe", n(c.val_com_exe));
        o.leaf_display("ValComIVA", n(*iva));
        o.end("Comisiones");
    }
    if let Some(g) = doc.geo_ref_emision.as_ref().filter(|_| boleta) {
        o.start("GeoRefEmision");
        o.leaf("LatitudEmision", &g.latitud_emision);
        o.leaf("LongitudEmision", &g.longitud_emision);
        o.leaf_display("SistemaReferencia", g.sistema_referencia);
        o.end("GeoRefEmision");
    }
    o.raw(ted);
    o.leaf("TmstFirma", tmst);
    o.into_string()
}

/// `Transporte/Aduana`, its codes already checked and written as codes.
fn aduana(o: &mut XmlOut, a: &crate::domain::document::Aduana) {
    o.start("Aduana");
    o.leaf_opt("CodModVenta", a.cod_mod_venta.as_deref());
    o.leaf_opt("CodClauVenta", a.cod_clau_venta.as_deref());
    o.leaf_display_opt("TotClauVenta", a.tot_clau_venta.map(n));
    o.leaf_opt("CodViaTransp", a.cod_via_transp.as_deref());
    o.leaf_opt("NombreTransp", a.nombre_transp.as_deref());
    o.leaf_opt("RUTCiaTransp", a.rut_cia_transp.as_deref());
    o.leaf_opt("NomCiaTransp", a.nom_cia_transp.as_deref());
    o.leaf_opt("IdAdicTransp", a.id_adic_transp.as_deref());
    o.leaf_opt("Booking", a.booking.as_deref());
    o.leaf_opt("Operador", a.operador.as_deref());
    o.leaf_opt("CodPtoEmbarque", a.cod_pto_embarque.as_deref());
    o.leaf_opt("IdAdicPtoEmb", a.id_adic_pto_emb.as_deref());
    o.leaf_opt("CodPtoDesemb", a.cod_pto_desemb.as_deref());
    o.leaf_opt("IdAdicPtoDesemb", a.id_adic_pto_desemb.as_deref());
    o.leaf_display_opt("Tara", a.tara);
    o.leaf_opt("CodUnidMedTara", a.cod_unid_med_tara.as_deref());
    o.leaf_display_opt("PesoBruto", a.peso_bruto.map(n));
    o.leaf_opt("CodUnidPesoBruto", a.cod_unid_peso_bruto.as_deref());
    o.leaf_display_opt("PesoNeto", a.peso_neto.map(n));
    o.leaf_opt("CodUnidPesoNeto", a.cod_unid_peso_neto.as_deref());
    o.leaf_display_opt("TotItems", a.tot_items);
    o.leaf_display_opt("TotBultos", a.tot_bultos);
    for b in &a.tipo_bultos {
        o.start("TipoBultos");
        o.leaf_opt("CodTpoBultos", b.cod_tpo_bultos.as_deref());
        o.leaf_display_opt("CantBultos", b.cant_bultos);
        o.leaf_opt("Marcas", b.marcas.as_deref());
        o.leaf_opt("IdContainer", b.id_container.as_deref());
        o.leaf_opt("Sello", b.sello.as_deref());
        o.leaf_opt("EmisorSello", b.emisor_sello.as_deref());
        o.end("TipoBultos");
    }
    o.leaf_display_opt("MntFlete", a.mnt_flete.map(n));
    o.leaf_display_opt("MntSeguro", a.mnt_seguro.map(n));
    o.leaf_opt("CodPaisRecep", a.cod_pais_recep.as_deref());
    o.leaf_opt("CodPaisDestin", a.cod_pais_destin.as_deref());
    o.end("Aduana");
}
