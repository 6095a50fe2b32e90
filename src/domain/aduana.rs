//! The Servicio Nacional de Aduanas' code tables that export documents (110, 111, 112) name by
//! code: sale modes, clauses, transport ways, ports, units, package types, countries, currencies
//! and export payment forms. They ship as data (`tables/aduana/*.tsv`, sources in
//! `tables/aduana/SOURCES.md`) and are compiled in, so the domain reads no file.
//!
//! A client may give a code or a name. Names match without regard to case, accents, spaces or
//! punctuation ("CARRETERO/TERRESTRE" is "CARRETERO / TERRESTRE"); where a table writes
//! `SIGLA - glosa`, the sigla and the glosa match too ("CIF", "KN", "COBRANZA").

use std::sync::OnceLock;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::de::{one_or_many_objects, opt_text_or_number};
use crate::error::Problems;

/// The customs data of an export (`Transporte/Aduana`). Codes may be given as the Aduana's code
/// or its name; they are written as codes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Aduana {
    /// Sale mode (Aduana table 51-26): 1 A FIRME, 2 BAJO CONDICIÓN…
    #[serde(
        rename = "CodModVenta",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_mod_venta: Option<String>,
    /// Sale clause (Incoterm, table 51-21): 1 CIF, 2 CFR, 5 FOB…
    #[serde(
        rename = "CodClauVenta",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_clau_venta: Option<String>,
    /// The total under the sale clause, in the operation currency.
    #[serde(rename = "TotClauVenta", default, skip_serializing_if = "Option::is_none")]
    pub tot_clau_venta: Option<Decimal>,
    /// Transport way (table 51-13): 1 marítima, 4 aéreo, 7 carretero…
    #[serde(
        rename = "CodViaTransp",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_via_transp: Option<String>,
    #[serde(rename = "NombreTransp", default, skip_serializing_if = "Option::is_none")]
    pub nombre_transp: Option<String>,
    #[serde(rename = "RUTCiaTransp", default, skip_serializing_if = "Option::is_none")]
    pub rut_cia_transp: Option<String>,
    #[serde(rename = "NomCiaTransp", default, skip_serializing_if = "Option::is_none")]
    pub nom_cia_transp: Option<String>,
    #[serde(
        rename = "IdAdicTransp",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_adic_transp: Option<String>,
    #[serde(
        rename = "Booking",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub booking: Option<String>,
    #[serde(
        rename = "Operador",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub operador: Option<String>,
    /// Port of shipment (table 51-11).
    #[serde(
        rename = "CodPtoEmbarque",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_pto_embarque: Option<String>,
    #[serde(
        rename = "IdAdicPtoEmb",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_adic_pto_emb: Option<String>,
    /// Port of landing (table 51-11).
    #[serde(
        rename = "CodPtoDesemb",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_pto_desemb: Option<String>,
    #[serde(
        rename = "IdAdicPtoDesemb",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_adic_pto_desemb: Option<String>,
    #[serde(rename = "Tara", default, skip_serializing_if = "Option::is_none")]
    pub tara: Option<u64>,
    /// Units (Aduana's units of measure): 6 KN, 10 U…
    #[serde(
        rename = "CodUnidMedTara",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_unid_med_tara: Option<String>,
    #[serde(rename = "PesoBruto", default, skip_serializing_if = "Option::is_none")]
    pub peso_bruto: Option<Decimal>,
    #[serde(
        rename = "CodUnidPesoBruto",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_unid_peso_bruto: Option<String>,
    #[serde(rename = "PesoNeto", default, skip_serializing_if = "Option::is_none")]
    pub peso_neto: Option<Decimal>,
    #[serde(
        rename = "CodUnidPesoNeto",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_unid_peso_neto: Option<String>,
    #[serde(rename = "TotItems", default, skip_serializing_if = "Option::is_none")]
    pub tot_items: Option<u64>,
    #[serde(rename = "TotBultos", default, skip_serializing_if = "Option::is_none")]
    pub tot_bultos: Option<u64>,
    /// Up to 10 kinds of package.
    #[serde(
        rename = "TipoBultos",
        default,
        deserialize_with = "one_or_many_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schema(value_type = Vec<TipoBultos>)]
    pub tipo_bultos: Vec<TipoBultos>,
    /// Freight and insurance, in the operation currency.
    #[serde(rename = "MntFlete", default, skip_serializing_if = "Option::is_none")]
    pub mnt_flete: Option<Decimal>,
    #[serde(rename = "MntSeguro", default, skip_serializing_if = "Option::is_none")]
    pub mnt_seguro: Option<Decimal>,
    /// Receiving and destination countries (table 51-9).
    #[serde(
        rename = "CodPaisRecep",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_pais_recep: Option<String>,
    #[serde(
        rename = "CodPaisDestin",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_pais_destin: Option<String>,
}

/// One kind of package of an export.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TipoBultos {
    #[serde(
        rename = "CodTpoBultos",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cod_tpo_bultos: Option<String>,
    #[serde(rename = "CantBultos", default, skip_serializing_if = "Option::is_none")]
    pub cant_bultos: Option<u64>,
    #[serde(
        rename = "Marcas",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub marcas: Option<String>,
    #[serde(
        rename = "IdContainer",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_container: Option<String>,
    #[serde(
        rename = "Sello",
        default,
        deserialize_with = "opt_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub sello: Option<String>,
    #[serde(rename = "EmisorSello", default, skip_serializing_if = "Option::is_none")]
    pub emisor_sello: Option<String>,
}

/// A currency of `TipMonType` by name or Aduana code, written back as its name.
pub fn moneda(p: &mut Problems, path: &str, v: &mut String) {
    match Table::Monedas.find(v) {
        Ok(row) => *v = row.name.to_string(),
        Err(_) => p.push(
            path,
            "unknown-code",
            format!("{v:?} is not a currency of the SII's list (TipMonType: DOLAR USA, EURO, PESO CL…)"),
        ),
    }
}

/// One of the Aduana tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    ModalidadVenta,
    ClausulaVenta,
    ViaTransporte,
    Puertos,
    Unidades,
    TiposBulto,
    Paises,
    Monedas,
    FormaPagoExportacion,
}

const ALL: [Table; 9] = [
    Table::ModalidadVenta,
    Table::ClausulaVenta,
    Table::ViaTransporte,
    Table::Puertos,
    Table::Unidades,
    Table::TiposBulto,
    Table::Paises,
    Table::Monedas,
    Table::FormaPagoExportacion,
];

impl Table {
    fn tsv(self) -> &'static str {
        match self {
            Table::ModalidadVenta => include_str!("../../tables/aduana/modalidad_venta.tsv"),
            Table::ClausulaVenta => include_str!("../../tables/aduana/clausula_venta.tsv"),
            Table::ViaTransporte => include_str!("../../tables/aduana/via_transporte.tsv"),
            Table::Puertos => include_str!("../../tables/aduana/puertos.tsv"),
            Table::Unidades => include_str!("../../tables/aduana/unidades.tsv"),
            Table::TiposBulto => include_str!("../../tables/aduana/tipos_bulto.tsv"),
            Table::Paises => include_str!("../../tables/aduana/paises.tsv"),
            Table::Monedas => include_str!("../../tables/aduana/monedas.tsv"),
            Table::FormaPagoExportacion => include_str!("../../tables/aduana/forma_pago_exportacion.tsv"),
        }
    }

    /// What the table holds, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Table::ModalidadVenta => "sale mode",
            Table::ClausulaVenta => "sale clause",
            Table::ViaTransporte => "transport way",
            Table::Puertos => "port",
            Table::Unidades => "unit of measure",
            Table::TiposBulto => "package type",
            Table::Paises => "country",
            Table::Monedas => "currency",
            Table::FormaPagoExportacion => "export payment form",
        }
    }

    fn rows(self) -> &'static [Row] {
        static ROWS: OnceLock<Vec<Vec<Row>>> = OnceLock::new();
        let all = ROWS.get_or_init(|| ALL.iter().map(|t| parse(t.tsv())).collect());
        let i = ALL.iter().position(|t| *t == self).unwrap_or_default();
        all.get(i).map(Vec::as_slice).unwrap_or_default()
    }

    /// The row of `code`.
    pub fn by_code(self, code: u32) -> Option<&'static Row> {
        self.rows().iter().find(|r| r.code == code)
    }

    /// The row a client's code or name stands for.
    pub fn find(self, given: &str) -> Result<&'static Row, LookupError> {
        let given = given.trim();
        if !given.is_empty() && given.bytes().all(|b| b.is_ascii_digit()) {
            return given.parse().ok().and_then(|c| self.by_code(c)).ok_or(LookupError::UnknownCode);
        }
        let key = fold(given);
        if key.is_empty() {
            return Err(LookupError::UnknownName);
        }
        let hits: Vec<&Row> = self.rows().iter().filter(|r| r.keys.contains(&key)).collect();
        match hits.as_slice() {
            [one] => Ok(one),
            [] => Err(LookupError::UnknownName),
            more => Err(LookupError::Ambiguous(more.iter().map(|r| r.code).collect())),
        }
    }
}

/// One code and its name as the table writes it.
#[derive(Debug)]
pub struct Row {
    pub code: u32,
    pub name: &'static str,
    keys: Vec<String>,
}

impl Row {
    /// The short name (`CIF`, `KN`, `COBRANZA`) where the table has one, else the name.
    pub fn sigla(&self) -> &'static str {
        self.name.split_once(" - ").map_or(self.name, |(s, _)| s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no such code")]
    UnknownCode,
    #[error("no such name")]
    UnknownName,
    #[error("the name fits more than one code: {0:?}")]
    Ambiguous(Vec<u32>),
}

fn parse(tsv: &'static str) -> Vec<Row> {
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let (code, name) = l.split_once('\t')?;
            let code = code.trim().parse().ok()?;
            let name = name.trim();
            let mut keys = vec![fold(name)];
            if let Some((sigla, glosa)) = name.split_once(" - ") {
                keys.push(fold(sigla));
                keys.push(fold(glosa));
            }
            Some(Row { code, name, keys })
        })
        .collect()
}

/// Upper case, without accents and without anything but letters and digits.
fn fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            let c = match c {
                'á' | 'à' | 'ä' | 'â' | 'Á' | 'À' | 'Ä' | 'Â' => 'A',
                'é' | 'è' | 'ë' | 'ê' | 'É' | 'È' | 'Ë' | 'Ê' => 'E',
                'í' | 'ì' | 'ï' | 'î' | 'Í' | 'Ì' | 'Ï' | 'Î' => 'I',
                'ó' | 'ò' | 'ö' | 'ô' | 'Ó' | 'Ò' | 'Ö' | 'Ô' => 'O',
                'ú' | 'ù' | 'ü' | 'û' | 'Ú' | 'Ù' | 'Ü' | 'Û' => 'U',
                'ñ' | 'Ñ' => 'N',
                'ç' | 'Ç' => 'C',
                c => c.to_ascii_uppercase(),
            };
            c.is_ascii_alphanumeric().then_some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_loads_with_unique_codes() {
        for t in ALL {
            let rows = t.rows();
            assert!(rows.len() >= 5, "{t:?}");
            let mut codes: Vec<u32> = rows.iter().map(|r| r.code).collect();
            codes.dedup();
            assert_eq!(codes.len(), rows.len(), "{t:?}");
            assert!(rows.iter().all(|r| r.code > 0), "{t:?}: the schema's codes are positive");
        }
    }

    /// The values the SII's export certification sets write, with the codes the tables give them.
    #[test]
    fn the_names_of_the_sii_sets_find_their_codes() {
        for (t, name, code) in [
            (Table::Monedas, "EURO", 142),
            (Table::Monedas, "LIBRA EST", 102),
            (Table::Monedas, "DOLAR USA", 13),
            (Table::Monedas, "PESO CL", 200),
            (Table::FormaPagoExportacion, "COBRANZA", 2),
            (Table::FormaPagoExportacion, "SIN PAGO", 21),
            (Table::ModalidadVenta, "BAJO CONDICION", 2),
            (Table::ModalidadVenta, "EN CONSIGNACION CON UN MINIMO A FIRME", 4),
            (Table::ClausulaVenta, "CIF", 1),
            (Table::ClausulaVenta, "CFR", 2),
            (Table::ViaTransporte, "CARRETERO/TERRESTRE", 7),
            (Table::ViaTransporte, "MARITIMA, FLUVIAL Y LACUSTRE", 1),
            (Table::Puertos, "CALDERA", 918),
            (Table::Puertos, "SAN ANTONIO", 906),
            (Table::Puertos, "SIDNEY", 811),
            (Table::Puertos, "BARCELONA", 563),
            (Table::Unidades, "U", 10),
            (Table::Unidades, "KN", 6),
            (Table::Unidades, "PAR", 17),
            (Table::Unidades, "LT", 9),
            (Table::TiposBulto, "PALLETS", 80),
            (Table::TiposBulto, "ROLLOS", 13),
            (Table::Paises, "AUSTRALIA", 406),
            (Table::Paises, "ESPANA", 517),
            (Table::Paises, "517", 517),
        ] {
            assert_eq!(t.find(name).map(|r| r.code), Ok(code), "{t:?} {name}");
        }
    }

    #[test]
    fn unknown_and_ambiguous_names_are_refused() {
        assert_eq!(Table::Paises.find("9999").map(|r| r.code), Err(LookupError::UnknownCode));
        assert_eq!(Table::Monedas.find("BITCOIN").map(|r| r.code), Err(LookupError::UnknownName));
        assert!(matches!(Table::FormaPagoExportacion.find("ANT/COB"), Err(LookupError::Ambiguous(_))));
        assert_eq!(Table::ClausulaVenta.find("1").map(Row::sigla), Ok("CIF"));
    }
}
