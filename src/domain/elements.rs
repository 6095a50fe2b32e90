//! The input's smaller elements, in the SII's names (DTE_v10.xsd / EnvioBOLETA_v11.xsd): what a
//! document carries besides its header, lines and references, kept apart from `document` so
//! that each file reads in one sitting.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::de::{one_or_many, opt_text_or_number, text_or_number};

/// A receptor without a Chilean RUT: its foreign identification and nationality (the Aduana's
/// country code).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Extranjero {
    #[serde(
        rename = "NumId",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_id: Option<String>,
    #[serde(
        rename = "Nacionalidad",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub nacionalidad: Option<String>,
    #[serde(
        rename = "IdAdicRecep",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_adic_recep: Option<String>,
}

/// The driver of a guía's transport.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Chofer {
    #[serde(rename = "RUTChofer")]
    pub rut_chofer: String,
    #[serde(rename = "NombreChofer")]
    pub nombre_chofer: String,
}

/// One payment of a document paid in instalments.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MntPago {
    #[serde(rename = "FchPago")]
    pub fch_pago: NaiveDate,
    #[serde(rename = "MntPago")]
    pub mnt_pago: Decimal,
    #[serde(rename = "GlosaPagos", default, skip_serializing_if = "Option::is_none")]
    pub glosa_pagos: Option<String>,
}

/// A subtotal printed on the document: its number, text, order, amounts and the lines it sums.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubTotInfo {
    #[serde(rename = "NroSTI", default, skip_serializing_if = "Option::is_none")]
    pub nro_sti: Option<u32>,
    #[serde(rename = "GlosaSTI")]
    pub glosa_sti: String,
    #[serde(rename = "OrdenSTI", default, skip_serializing_if = "Option::is_none")]
    pub orden_sti: Option<u32>,
    #[serde(rename = "SubTotNetoSTI", default, skip_serializing_if = "Option::is_none")]
    pub sub_tot_neto_sti: Option<Decimal>,
    #[serde(rename = "SubTotIVASTI", default, skip_serializing_if = "Option::is_none")]
    pub sub_tot_iva_sti: Option<Decimal>,
    #[serde(rename = "SubTotAdicSTI", default, skip_serializing_if = "Option::is_none")]
    pub sub_tot_adic_sti: Option<Decimal>,
    #[serde(rename = "SubTotExeSTI", default, skip_serializing_if = "Option::is_none")]
    pub sub_tot_exe_sti: Option<Decimal>,
    #[serde(rename = "ValSubtotSTI", default, skip_serializing_if = "Option::is_none")]
    pub val_subtot_sti: Option<Decimal>,
    /// The numbers of the lines it sums.
    #[serde(rename = "LineasDeta", default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<u32>)]
    pub lineas_deta: Vec<u32>,
}

/// A quantity of a line broken down by code (sizes, lots).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subcantidad {
    #[serde(rename = "SubQty")]
    pub sub_qty: Decimal,
    #[serde(rename = "SubCod", deserialize_with = "text_or_number")]
    pub sub_cod: String,
    /// The kind of code `SubCod` is (e.g. a serial or lot number scheme).
    #[serde(rename = "TipCodSubQty", default, skip_serializing_if = "Option::is_none")]
    pub tip_cod_sub_qty: Option<String>,
}

/// A line's discount or surcharge broken down (informative): `%` or `$` and its value.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubDscto {
    #[serde(rename = "TipoDscto")]
    pub tipo_dscto: String,
    #[serde(rename = "ValorDscto")]
    pub valor_dscto: Decimal,
}

/// See [`SubDscto`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubRecargo {
    #[serde(rename = "TipoRecargo")]
    pub tipo_recargo: String,
    #[serde(rename = "ValorRecargo")]
    pub valor_recargo: Decimal,
}

/// The issuer acts as withholding agent for this line (`IndAgente` R), with the bases of the
/// meat and margin taxes and the consumer price where they apply.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retenedor {
    #[serde(rename = "IndAgente")]
    pub ind_agente: String,
    #[serde(rename = "MntBaseFaena", default, skip_serializing_if = "Option::is_none")]
    pub mnt_base_faena: Option<Decimal>,
    #[serde(rename = "MntMargComer", default, skip_serializing_if = "Option::is_none")]
    pub mnt_marg_comer: Option<Decimal>,
    #[serde(rename = "PrcConsFinal", default, skip_serializing_if = "Option::is_none")]
    pub prc_cons_final: Option<Decimal>,
}

/// A commission or other charge of a liquidación-factura (43): its amounts are the agent's, and
/// are subtracted from what the consignor gets.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Comision {
    #[serde(rename = "NroLinCom", default, skip_serializing_if = "Option::is_none")]
    pub nro_lin_com: Option<u32>,
    /// `C` comisión, `O` otros cargos.
    #[serde(rename = "TipoMovim")]
    pub tipo_movim: String,
    #[serde(rename = "Glosa")]
    pub glosa: String,
    /// Informative (the SII does not validate it).
    #[serde(rename = "TasaComision", default, skip_serializing_if = "Option::is_none")]
    pub tasa_comision: Option<Decimal>,
    #[serde(rename = "ValComNeto")]
    pub val_com_neto: Decimal,
    #[serde(rename = "ValComExe", default)]
    pub val_com_exe: Decimal,
    /// Computed as round(ValComNeto × 19 %) when absent.
    #[serde(rename = "ValComIVA", default, skip_serializing_if = "Option::is_none")]
    pub val_com_iva: Option<Decimal>,
}

/// Where a boleta was issued (EnvioBOLETA_v11 §F): WGS84 decimal degrees.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoRefEmision {
    #[serde(rename = "LatitudEmision", deserialize_with = "text_or_number")]
    pub latitud_emision: String,
    #[serde(rename = "LongitudEmision", deserialize_with = "text_or_number")]
    pub longitud_emision: String,
    /// 1 = WGS84, the only system the SII names (default).
    #[serde(rename = "SistemaReferencia", default = "wgs84")]
    pub sistema_referencia: u8,
}

fn wgs84() -> u8 {
    1
}

/// The document's amounts in another currency: the currency and the exchange rate come from the
/// client, the amounts are computed; amounts given are checked against them. On an export the
/// rate is units of this currency per unit of the operation currency; on a document in pesos it
/// is pesos per unit of this currency (the SII's "tipo de cambio").
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtraMoneda {
    /// A currency name of `TipMonType` (`PESO CL`, `DOLAR USA`…) or its Aduana code.
    #[serde(rename = "TpoMoneda", deserialize_with = "text_or_number")]
    pub tpo_moneda: String,
    #[serde(rename = "TpoCambio", default, skip_serializing_if = "Option::is_none")]
    pub tpo_cambio: Option<Decimal>,
    #[serde(rename = "MntNetoOtrMnda", default, skip_serializing_if = "Option::is_none")]
    pub mnt_neto_otr_mnda: Option<Decimal>,
    #[serde(rename = "MntExeOtrMnda", default, skip_serializing_if = "Option::is_none")]
    pub mnt_exe_otr_mnda: Option<Decimal>,
    #[serde(rename = "IVAOtrMnda", default, skip_serializing_if = "Option::is_none")]
    pub iva_otr_mnda: Option<Decimal>,
    #[serde(rename = "MntTotOtrMnda", default, skip_serializing_if = "Option::is_none")]
    pub mnt_tot_otr_mnda: Option<Decimal>,
}

/// A line priced in the other currency of a document in pesos (`Detalle/OtrMnda`): the price is
/// the client's; the peso `PrcItem` and the amounts in the other currency are computed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtrMnda {
    #[serde(rename = "PrcOtrMon")]
    pub prc_otr_mon: Decimal,
    /// The currency's code of 3 letters (`USD`, `EUR`); defaults from `OtraMoneda.TpoMoneda` for
    /// the common ones.
    #[serde(rename = "Moneda", default, skip_serializing_if = "Option::is_none")]
    pub moneda: Option<String>,
    /// The conversion factor: the document's `TpoCambio` (checked when given).
    #[serde(rename = "FctConv", default, skip_serializing_if = "Option::is_none")]
    pub fct_conv: Option<Decimal>,
    #[serde(rename = "DctoOtrMnda", default, skip_serializing_if = "Option::is_none")]
    pub dcto_otr_mnda: Option<Decimal>,
    #[serde(rename = "RecargoOtrMnda", default, skip_serializing_if = "Option::is_none")]
    pub recargo_otr_mnda: Option<Decimal>,
    #[serde(rename = "MontoItemOtrMnda", default, skip_serializing_if = "Option::is_none")]
    pub monto_item_otr_mnda: Option<Decimal>,
}
