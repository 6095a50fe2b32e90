//! The input document, in the SII's own element names (DTE_v10.xsd / EnvioBOLETA_v11.xsd).
//! What the gateway computes (Totales, MontoItem, Folio, TED, TmstFirma) may be omitted; when given,
//! it must match what the gateway computes.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use super::aduana::{Aduana, TipoBultos};
use super::de::{one_or_many, one_or_many_objects, opt_text_or_number, text_or_number};
pub use super::elements::{
    Chofer, Comision, Extranjero, GeoRefEmision, MntPago, OtrMnda, OtraMoneda, Retenedor, SubDscto, SubRecargo,
    SubTotInfo, Subcantidad,
};
use super::rut::Rut;

/// The document types this gateway issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "u16")]
pub enum TipoDte {
    Factura = 33,
    FacturaExenta = 34,
    Boleta = 39,
    BoletaExenta = 41,
    LiquidacionFactura = 43,
    FacturaCompra = 46,
    GuiaDespacho = 52,
    NotaDebito = 56,
    NotaCredito = 61,
    FacturaExportacion = 110,
    NotaDebitoExportacion = 111,
    NotaCreditoExportacion = 112,
}

impl TipoDte {
    pub const ALL: [TipoDte; 12] = [
        TipoDte::Factura,
        TipoDte::FacturaExenta,
        TipoDte::Boleta,
        TipoDte::BoletaExenta,
        TipoDte::LiquidacionFactura,
        TipoDte::FacturaCompra,
        TipoDte::GuiaDespacho,
        TipoDte::NotaDebito,
        TipoDte::NotaCredito,
        TipoDte::FacturaExportacion,
        TipoDte::NotaDebitoExportacion,
        TipoDte::NotaCreditoExportacion,
    ];

    pub fn from_code(code: u16) -> Option<TipoDte> {
        TipoDte::ALL.into_iter().find(|t| *t as u16 == code)
    }

    pub fn code(self) -> u16 {
        self as u16
    }

    /// The element a DTE of this type holds: a liquidación-factura is a `Liquidacion`.
    pub fn root_element(self) -> &'static str {
        match self {
            TipoDte::LiquidacionFactura => "Liquidacion",
            t if t.is_export() => "Exportaciones",
            _ => "Documento",
        }
    }

    /// Boletas travel in EnvioBOLETA and are priced gross.
    pub fn is_boleta(self) -> bool {
        matches!(self, TipoDte::Boleta | TipoDte::BoletaExenta)
    }

    /// The export documents (110, 111, 112): exempt, in the operation currency.
    pub fn is_export(self) -> bool {
        matches!(self, TipoDte::FacturaExportacion | TipoDte::NotaDebitoExportacion | TipoDte::NotaCreditoExportacion)
    }

    /// Types whose every line is exempt.
    pub fn is_exempt(self) -> bool {
        matches!(self, TipoDte::FacturaExenta | TipoDte::BoletaExenta)
    }

    /// CAFs of these types expire 6 months after authorisation (SII Res. Ex. 58/2017, as applied by
    /// LibreDTE to 33, 43, 46, 56, 61).
    pub fn caf_expires(self) -> bool {
        matches!(
            self,
            TipoDte::Factura
                | TipoDte::LiquidacionFactura
                | TipoDte::FacturaCompra
                | TipoDte::NotaDebito
                | TipoDte::NotaCredito
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            TipoDte::Factura => "factura electrónica",
            TipoDte::FacturaExenta => "factura no afecta o exenta electrónica",
            TipoDte::Boleta => "boleta electrónica",
            TipoDte::BoletaExenta => "boleta exenta electrónica",
            TipoDte::LiquidacionFactura => "liquidación-factura electrónica",
            TipoDte::FacturaCompra => "factura de compra electrónica",
            TipoDte::GuiaDespacho => "guía de despacho electrónica",
            TipoDte::NotaDebito => "nota de débito electrónica",
            TipoDte::NotaCredito => "nota de crédito electrónica",
            TipoDte::FacturaExportacion => "factura de exportación electrónica",
            TipoDte::NotaDebitoExportacion => "nota de débito de exportación electrónica",
            TipoDte::NotaCreditoExportacion => "nota de crédito de exportación electrónica",
        }
    }
}

impl From<TipoDte> for u16 {
    fn from(t: TipoDte) -> u16 {
        t as u16
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentInput {
    #[serde(rename = "Encabezado")]
    pub encabezado: Encabezado,
    /// One line or a list of them.
    #[serde(rename = "Detalle", default, deserialize_with = "one_or_many_objects")]
    #[schema(value_type = Vec<Detalle>)]
    pub detalle: Vec<Detalle>,
    /// Subtotals shown on the document (informative; not on boletas).
    #[serde(
        rename = "SubTotInfo",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<SubTotInfo>)]
    pub sub_tot_info: Vec<SubTotInfo>,
    #[serde(
        rename = "DscRcgGlobal",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<DscRcgGlobal>)]
    pub dsc_rcg_global: Vec<DscRcgGlobal>,
    #[serde(
        rename = "Referencia",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<Referencia>)]
    pub referencia: Vec<Referencia>,
    /// Liquidación-factura (43) only: the commissions and other charges of the commission agent.
    #[serde(
        rename = "Comisiones",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<Comision>)]
    pub comisiones: Vec<Comision>,
    /// Boletas only: where it was issued.
    #[serde(rename = "GeoRefEmision", default, skip_serializing_if = "Option::is_none")]
    pub geo_ref_emision: Option<GeoRefEmision>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Encabezado {
    #[serde(rename = "IdDoc")]
    pub id_doc: IdDoc,
    /// Optional: the emisor comes from the company record; when sent, its RUT must be the company's.
    #[serde(rename = "Emisor", default, skip_serializing_if = "Option::is_none")]
    pub emisor: Option<EmisorRef>,
    /// The principal a document is issued on behalf of (sales by a mandatario).
    #[serde(rename = "RUTMandante", default, skip_serializing_if = "Option::is_none")]
    pub rut_mandante: Option<String>,
    #[serde(rename = "Receptor", default, skip_serializing_if = "Option::is_none")]
    pub receptor: Option<Receptor>,
    /// Who asked for the document when it is not the receptor.
    #[serde(rename = "RUTSolicita", default, skip_serializing_if = "Option::is_none")]
    pub rut_solicita: Option<String>,
    #[serde(rename = "Transporte", default, skip_serializing_if = "Option::is_none")]
    pub transporte: Option<Transporte>,
    #[serde(rename = "Totales", default, skip_serializing_if = "Option::is_none")]
    pub totales: Option<Totales>,
    /// The amounts in another currency, at the client's exchange rate (exports: usually the
    /// total in PESO CL).
    #[serde(rename = "OtraMoneda", default, skip_serializing_if = "Option::is_none")]
    pub otra_moneda: Option<OtraMoneda>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct EmisorRef {
    #[serde(rename = "RUTEmisor")]
    pub rut_emisor: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdDoc {
    #[serde(rename = "TipoDTE")]
    pub tipo_dte: u16,
    #[serde(rename = "Folio", default, skip_serializing_if = "Option::is_none")]
    pub folio: Option<u64>,
    /// Defaults to the day of issuance.
    #[serde(rename = "FchEmis", default, skip_serializing_if = "Option::is_none")]
    pub fch_emis: Option<NaiveDate>,
    #[serde(rename = "IndNoRebaja", default, skip_serializing_if = "Option::is_none")]
    pub ind_no_rebaja: Option<u8>,
    #[serde(rename = "TipoDespacho", default, skip_serializing_if = "Option::is_none")]
    pub tipo_despacho: Option<u8>,
    #[serde(rename = "IndTraslado", default, skip_serializing_if = "Option::is_none")]
    pub ind_traslado: Option<u8>,
    #[serde(rename = "TpoImpresion", default, skip_serializing_if = "Option::is_none")]
    pub tpo_impresion: Option<String>,
    #[serde(rename = "IndServicio", default, skip_serializing_if = "Option::is_none")]
    pub ind_servicio: Option<u8>,
    /// 1: line amounts and global discounts include IVA (facturas and notas without additional
    /// taxes); MntNeto and IVA are derived as on a boleta.
    #[serde(rename = "MntBruto", default, skip_serializing_if = "Option::is_none")]
    pub mnt_bruto: Option<u8>,
    /// Boletas only: 2 = line prices are net (default: gross).
    #[serde(rename = "IndMntNeto", default, skip_serializing_if = "Option::is_none")]
    pub ind_mnt_neto: Option<u8>,
    #[serde(rename = "TpoTranCompra", default, skip_serializing_if = "Option::is_none")]
    pub tpo_tran_compra: Option<u8>,
    #[serde(rename = "TpoTranVenta", default, skip_serializing_if = "Option::is_none")]
    pub tpo_tran_venta: Option<u8>,
    #[serde(rename = "FmaPago", default, skip_serializing_if = "Option::is_none")]
    pub fma_pago: Option<u8>,
    /// Exports: the Aduana's export payment form, by code (2) or name (`COBRANZA`).
    #[serde(
        rename = "FmaPagExp",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub fma_pag_exp: Option<String>,
    #[serde(rename = "FchCancel", default, skip_serializing_if = "Option::is_none")]
    pub fch_cancel: Option<NaiveDate>,
    /// The amount paid, and the balance left, when the document was paid in part.
    #[serde(rename = "MntCancel", default, skip_serializing_if = "Option::is_none")]
    pub mnt_cancel: Option<Decimal>,
    #[serde(rename = "SaldoInsol", default, skip_serializing_if = "Option::is_none")]
    pub saldo_insol: Option<Decimal>,
    /// The payments agreed (one or a list, at most 30).
    #[serde(
        rename = "MntPagos",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<MntPago>)]
    pub mnt_pagos: Vec<MntPago>,
    #[serde(rename = "PeriodoDesde", default, skip_serializing_if = "Option::is_none")]
    pub periodo_desde: Option<NaiveDate>,
    #[serde(rename = "PeriodoHasta", default, skip_serializing_if = "Option::is_none")]
    pub periodo_hasta: Option<NaiveDate>,
    /// DTE: the SII's code (CH, LT, EF, PE, TC, CF, OT); boletas: 1 efectivo, 2 pago electrónico,
    /// 3 transferencia, 4 cheque, 5 otro.
    #[serde(
        rename = "MedioPago",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub medio_pago: Option<String>,
    /// AHORRO, CORRIENTE or VISTA: the account to pay into.
    #[serde(rename = "TpoCtaPago", default, skip_serializing_if = "Option::is_none")]
    pub tpo_cta_pago: Option<String>,
    #[serde(
        rename = "NumCtaPago",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_cta_pago: Option<String>,
    #[serde(rename = "BcoPago", default, skip_serializing_if = "Option::is_none")]
    pub bco_pago: Option<String>,
    #[serde(
        rename = "TermPagoCdg",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub term_pago_cdg: Option<String>,
    #[serde(rename = "TermPagoGlosa", default, skip_serializing_if = "Option::is_none")]
    pub term_pago_glosa: Option<String>,
    #[serde(rename = "TermPagoDias", default, skip_serializing_if = "Option::is_none")]
    pub term_pago_dias: Option<u16>,
    #[serde(rename = "FchVenc", default, skip_serializing_if = "Option::is_none")]
    pub fch_venc: Option<NaiveDate>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receptor {
    #[serde(rename = "RUTRecep", default, skip_serializing_if = "Option::is_none")]
    pub rut_recep: Option<String>,
    #[serde(
        rename = "CdgIntRecep",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cdg_int_recep: Option<String>,
    #[serde(rename = "RznSocRecep", default, skip_serializing_if = "Option::is_none")]
    pub rzn_soc_recep: Option<String>,
    /// A foreign receptor (a 46 bought from a foreign supplier, an export).
    #[serde(rename = "Extranjero", default, skip_serializing_if = "Option::is_none")]
    pub extranjero: Option<Extranjero>,
    #[serde(rename = "GiroRecep", default, skip_serializing_if = "Option::is_none")]
    pub giro_recep: Option<String>,
    #[serde(
        rename = "Contacto",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub contacto: Option<String>,
    #[serde(rename = "CorreoRecep", default, skip_serializing_if = "Option::is_none")]
    pub correo_recep: Option<String>,
    /// Boletas only (EnvioBOLETA_v11, 2024-12).
    #[serde(
        rename = "TelefonoRecep",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub telefono_recep: Option<String>,
    #[serde(rename = "DirRecep", default, skip_serializing_if = "Option::is_none")]
    pub dir_recep: Option<String>,
    #[serde(rename = "CmnaRecep", default, skip_serializing_if = "Option::is_none")]
    pub cmna_recep: Option<String>,
    #[serde(rename = "CiudadRecep", default, skip_serializing_if = "Option::is_none")]
    pub ciudad_recep: Option<String>,
    #[serde(rename = "DirPostal", default, skip_serializing_if = "Option::is_none")]
    pub dir_postal: Option<String>,
    #[serde(rename = "CmnaPostal", default, skip_serializing_if = "Option::is_none")]
    pub cmna_postal: Option<String>,
    #[serde(rename = "CiudadPostal", default, skip_serializing_if = "Option::is_none")]
    pub ciudad_postal: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transporte {
    #[serde(
        rename = "Patente",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub patente: Option<String>,
    #[serde(rename = "RUTTrans", default, skip_serializing_if = "Option::is_none")]
    pub rut_trans: Option<String>,
    #[serde(rename = "Chofer", default, skip_serializing_if = "Option::is_none")]
    pub chofer: Option<Chofer>,
    #[serde(rename = "DirDest", default, skip_serializing_if = "Option::is_none")]
    pub dir_dest: Option<String>,
    #[serde(rename = "CmnaDest", default, skip_serializing_if = "Option::is_none")]
    pub cmna_dest: Option<String>,
    #[serde(rename = "CiudadDest", default, skip_serializing_if = "Option::is_none")]
    pub ciudad_dest: Option<String>,
    /// Exports (and guías taking goods to be exported): the customs data.
    #[serde(rename = "Aduana", default, skip_serializing_if = "Option::is_none")]
    pub aduana: Option<Aduana>,
}

/// Totals as a client may declare them; each one given is checked against the computed value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Totales {
    /// Exports: the operation currency, a name of the SII's list (`DOLAR USA`, `EURO`) or its
    /// Aduana code.
    #[serde(
        rename = "TpoMoneda",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub tpo_moneda: Option<String>,
    #[serde(rename = "MntNeto", default, skip_serializing_if = "Option::is_none")]
    pub mnt_neto: Option<Decimal>,
    #[serde(rename = "MntExe", default, skip_serializing_if = "Option::is_none")]
    pub mnt_exe: Option<Decimal>,
    #[serde(rename = "TasaIVA", default, skip_serializing_if = "Option::is_none")]
    pub tasa_iva: Option<Decimal>,
    #[serde(rename = "IVA", default, skip_serializing_if = "Option::is_none")]
    pub iva: Option<Decimal>,
    #[serde(rename = "ImptoReten", default, skip_serializing_if = "Vec::is_empty")]
    pub impto_reten: Vec<ImptoReten>,
    #[serde(rename = "IVANoRet", default, skip_serializing_if = "Option::is_none")]
    pub iva_no_ret: Option<Decimal>,
    /// The meat-slaughter base of IVA anticipado code 17 (informed by the issuer; its tax is
    /// 5 % of it).
    #[serde(rename = "MntBase", default, skip_serializing_if = "Option::is_none")]
    pub mnt_base: Option<Decimal>,
    /// The base of the commercialisation margins (informed by the issuer).
    #[serde(rename = "MntMargenCom", default, skip_serializing_if = "Option::is_none")]
    pub mnt_margen_com: Option<Decimal>,
    /// The third party's share of the IVA, for a sale on someone else's account; IVAProp is
    /// the rest (IVA = IVAProp + IVATerc).
    #[serde(rename = "IVATerc", default, skip_serializing_if = "Option::is_none")]
    pub iva_terc: Option<Decimal>,
    #[serde(rename = "IVAProp", default, skip_serializing_if = "Option::is_none")]
    pub iva_prop: Option<Decimal>,
    /// The deposit on returnable containers: the sum of the lines with IndExe 3.
    #[serde(rename = "GrntDep", default, skip_serializing_if = "Option::is_none")]
    pub grnt_dep: Option<Decimal>,
    /// Construction companies' special credit (DL 910 art. 21): `true` for 65 % of the IVA as
    /// the gateway computes it, or an amount up to that.
    #[serde(rename = "CredEC", default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub cred_ec: Option<serde_json::Value>,
    #[serde(rename = "MntTotal", default, skip_serializing_if = "Option::is_none")]
    pub mnt_total: Option<Decimal>,
    #[serde(rename = "MontoNF", default, skip_serializing_if = "Option::is_none")]
    pub monto_nf: Option<Decimal>,
    #[serde(rename = "MontoPeriodo", default, skip_serializing_if = "Option::is_none")]
    pub monto_periodo: Option<Decimal>,
    #[serde(rename = "TotalPeriodo", default, skip_serializing_if = "Option::is_none")]
    pub total_periodo: Option<Decimal>,
    #[serde(rename = "SaldoAnterior", default, skip_serializing_if = "Option::is_none")]
    pub saldo_anterior: Option<Decimal>,
    #[serde(rename = "VlrPagar", default, skip_serializing_if = "Option::is_none")]
    pub vlr_pagar: Option<Decimal>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImptoReten {
    #[serde(rename = "TipoImp")]
    pub tipo_imp: u16,
    #[serde(rename = "TasaImp", default, skip_serializing_if = "Option::is_none")]
    pub tasa_imp: Option<Decimal>,
    #[serde(rename = "MontoImp")]
    pub monto_imp: Decimal,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CdgItem {
    #[serde(rename = "TpoCodigo", deserialize_with = "text_or_number")]
    pub tpo_codigo: String,
    #[serde(rename = "VlrCodigo", deserialize_with = "text_or_number")]
    pub vlr_codigo: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Detalle {
    #[serde(rename = "NroLinDet", default, skip_serializing_if = "Option::is_none")]
    pub nro_lin_det: Option<u32>,
    #[serde(rename = "CdgItem", default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<CdgItem>)]
    pub cdg_item: Vec<CdgItem>,
    /// Liquidación-factura (43): the type of the document settled on this line (33, 56, 61…; 99
    /// for an advance or other transaction).
    #[serde(
        rename = "TpoDocLiq",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub tpo_doc_liq: Option<String>,
    #[serde(rename = "IndExe", default, skip_serializing_if = "Option::is_none")]
    pub ind_exe: Option<u8>,
    #[serde(rename = "Retenedor", default, skip_serializing_if = "Option::is_none")]
    pub retenedor: Option<Retenedor>,
    #[serde(rename = "NmbItem")]
    pub nmb_item: String,
    #[serde(rename = "DscItem", default, skip_serializing_if = "Option::is_none")]
    pub dsc_item: Option<String>,
    /// A reference quantity, unit and price (shown, not computed with).
    #[serde(rename = "QtyRef", default, skip_serializing_if = "Option::is_none")]
    pub qty_ref: Option<Decimal>,
    #[serde(
        rename = "UnmdRef",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub unmd_ref: Option<String>,
    #[serde(rename = "PrcRef", default, skip_serializing_if = "Option::is_none")]
    pub prc_ref: Option<Decimal>,
    #[serde(rename = "QtyItem", default, skip_serializing_if = "Option::is_none")]
    pub qty_item: Option<Decimal>,
    #[serde(
        rename = "Subcantidad",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<Subcantidad>)]
    pub subcantidad: Vec<Subcantidad>,
    #[serde(rename = "FchElabor", default, skip_serializing_if = "Option::is_none")]
    pub fch_elabor: Option<NaiveDate>,
    #[serde(rename = "FchVencim", default, skip_serializing_if = "Option::is_none")]
    pub fch_vencim: Option<NaiveDate>,
    #[serde(
        rename = "UnmdItem",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub unmd_item: Option<String>,
    #[serde(rename = "PrcItem", default, skip_serializing_if = "Option::is_none")]
    pub prc_item: Option<Decimal>,
    /// The price in the other currency of a document in pesos with `OtraMoneda`.
    #[serde(rename = "OtrMnda", default, skip_serializing_if = "Option::is_none")]
    pub otr_mnda: Option<OtrMnda>,
    #[serde(rename = "DescuentoPct", default, skip_serializing_if = "Option::is_none")]
    pub descuento_pct: Option<Decimal>,
    #[serde(rename = "DescuentoMonto", default, skip_serializing_if = "Option::is_none")]
    pub descuento_monto: Option<Decimal>,
    #[serde(
        rename = "SubDscto",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<SubDscto>)]
    pub sub_dscto: Vec<SubDscto>,
    #[serde(rename = "RecargoPct", default, skip_serializing_if = "Option::is_none")]
    pub recargo_pct: Option<Decimal>,
    #[serde(rename = "RecargoMonto", default, skip_serializing_if = "Option::is_none")]
    pub recargo_monto: Option<Decimal>,
    #[serde(
        rename = "SubRecargo",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<SubRecargo>)]
    pub sub_recargo: Vec<SubRecargo>,
    #[serde(rename = "CodImpAdic", default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub cod_imp_adic: Vec<u16>,
    #[serde(rename = "MontoItem", default, skip_serializing_if = "Option::is_none")]
    pub monto_item: Option<Decimal>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DscRcgGlobal {
    #[serde(rename = "NroLinDR", default, skip_serializing_if = "Option::is_none")]
    pub nro_lin_dr: Option<u32>,
    /// `D` descuento or `R` recargo.
    #[serde(rename = "TpoMov")]
    pub tpo_mov: String,
    #[serde(rename = "GlosaDR", default, skip_serializing_if = "Option::is_none")]
    pub glosa_dr: Option<String>,
    /// `%` or `$`.
    #[serde(rename = "TpoValor")]
    pub tpo_valor: String,
    #[serde(rename = "ValorDR")]
    pub valor_dr: Decimal,
    /// 1 = applies to exempt amounts, 2 = to non-billable amounts.
    #[serde(rename = "IndExeDR", default, skip_serializing_if = "Option::is_none")]
    pub ind_exe_dr: Option<u8>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Referencia {
    #[serde(rename = "NroLinRef", default, skip_serializing_if = "Option::is_none")]
    pub nro_lin_ref: Option<u32>,
    /// A document type code: a number (33) or text (`SET`, `801`).
    #[serde(rename = "TpoDocRef")]
    #[schema(value_type = String)]
    pub tpo_doc_ref: serde_json::Value,
    #[serde(rename = "IndGlobal", default, skip_serializing_if = "Option::is_none")]
    pub ind_global: Option<u8>,
    /// A folio: a number or text.
    #[serde(rename = "FolioRef")]
    #[schema(value_type = String)]
    pub folio_ref: serde_json::Value,
    #[serde(rename = "RUTOtr", default, skip_serializing_if = "Option::is_none")]
    pub rut_otr: Option<String>,
    /// The other issuer's foreign identification, when it has no RUT.
    #[serde(
        rename = "IdAdicOtr",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_adic_otr: Option<String>,
    /// Required on DTE; boletas' references carry no date.
    #[serde(rename = "FchRef", default, skip_serializing_if = "Option::is_none")]
    pub fch_ref: Option<NaiveDate>,
    #[serde(rename = "CodRef", default, skip_serializing_if = "Option::is_none")]
    pub cod_ref: Option<u8>,
    #[serde(rename = "RazonRef", default, skip_serializing_if = "Option::is_none")]
    pub razon_ref: Option<String>,
}

impl DocumentInput {
    /// Parses the JSON input; a type error names its path (e.g. `Detalle[0].QtyItem`).
    pub fn from_json(bytes: &[u8]) -> Result<DocumentInput, crate::DteError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                crate::DteError::Malformed(inner.to_string())
            } else {
                crate::DteError::single(if path == "." { String::new() } else { path }, "wrong-type", inner.to_string())
            }
        })
    }
}

/// A scalar that integrators send as a number or a string (`TpoDocRef`, `FolioRef`).
pub fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A parsed RUT, or the field error that explains why not.
pub fn parse_rut(path: &str, s: &str) -> Result<Rut, crate::FieldError> {
    s.parse().map_err(|e: super::rut::RutError| {
        let code = match e {
            super::rut::RutError::CheckDigit { .. } => "rut-check-digit",
            _ => "rut-format",
        };
        crate::FieldError::new(path, code, e.to_string())
    })
}
