//! The issuing company (Emisor) with its SII resolution, as the CLI's company file and the service's
//! company record hold it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::document::parse_rut;
use super::rut::Rut;
use super::text;
use crate::error::{DteError, Problems};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Company {
    #[serde(rename = "RUTEmisor")]
    pub rut_emisor: String,
    #[serde(rename = "RznSoc")]
    pub rzn_soc: String,
    #[serde(rename = "GiroEmis")]
    pub giro_emis: String,
    #[serde(rename = "Telefono", default, skip_serializing_if = "Option::is_none")]
    pub telefono: Option<String>,
    #[serde(rename = "CorreoEmisor", default, skip_serializing_if = "Option::is_none")]
    pub correo_emisor: Option<String>,
    #[serde(rename = "Acteco")]
    pub acteco: Vec<u32>,
    #[serde(rename = "Sucursal", default, skip_serializing_if = "Option::is_none")]
    pub sucursal: Option<String>,
    #[serde(rename = "CdgSIISucur", default, skip_serializing_if = "Option::is_none")]
    pub cdg_sii_sucur: Option<u64>,
    #[serde(rename = "DirOrigen")]
    pub dir_origen: String,
    #[serde(rename = "CmnaOrigen")]
    pub cmna_origen: String,
    #[serde(rename = "CiudadOrigen", default, skip_serializing_if = "Option::is_none")]
    pub ciudad_origen: Option<String>,
    #[serde(rename = "FchResol")]
    pub fch_resol: NaiveDate,
    #[serde(rename = "NroResol")]
    pub nro_resol: u32,
    /// The SII office (unidad) the company answers to, printed under the document box, e.g.
    /// "S.I.I. - SANTIAGO ORIENTE".
    #[serde(rename = "OficinaSII", default, skip_serializing_if = "Option::is_none")]
    pub oficina_sii: Option<String>,
}

impl Company {
    pub fn from_json(bytes: &[u8]) -> Result<Company, DteError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let c: Company = serde_path_to_error::deserialize(de)
            .map_err(|e| DteError::single(format!("company.{}", e.path()), "wrong-type", e.into_inner().to_string()))?;
        let mut c = c;
        c.validate()?;
        c.rut_emisor = c.rut()?.to_string();
        Ok(c)
    }

    pub fn rut(&self) -> Result<Rut, DteError> {
        parse_rut("company.RUTEmisor", &self.rut_emisor).map_err(|e| DteError::Invalid(vec![e]))
    }

    /// The XSD limits of Emisor (DTE_v10.xsd) and of the Carátula resolution.
    pub fn validate(&self) -> Result<(), DteError> {
        let mut p = Problems::default();
        if let Err(e) = parse_rut("company.RUTEmisor", &self.rut_emisor) {
            p.0.push(e);
        }
        text::check(&mut p, "company.RznSoc", &self.rzn_soc, 1, 100);
        text::check(&mut p, "company.GiroEmis", &self.giro_emis, 1, 80);
        text::check_opt(&mut p, "company.Telefono", &self.telefono, 20);
        text::check_opt(&mut p, "company.CorreoEmisor", &self.correo_emisor, 80);
        text::check_opt(&mut p, "company.Sucursal", &self.sucursal, 20);
        text::check(&mut p, "company.DirOrigen", &self.dir_origen, 1, 70);
        text::check(&mut p, "company.CmnaOrigen", &self.cmna_origen, 1, 20);
        text::check_opt(&mut p, "company.CiudadOrigen", &self.ciudad_origen, 20);
        text::check_opt(&mut p, "company.OficinaSII", &self.oficina_sii, 60);
        if self.acteco.is_empty() || self.acteco.len() > 4 {
            p.push("company.Acteco", "count", "between 1 and 4 activity codes are required");
        }
        for (i, a) in self.acteco.iter().enumerate() {
            if *a == 0 || *a > 999_999 {
                p.push(format!("company.Acteco[{i}]"), "out-of-range", "an activity code has 1 to 6 digits");
            }
        }
        if self.nro_resol > 999_999 {
            p.push("company.NroResol", "out-of-range", "NroResol has at most 6 digits");
        }
        if self.cdg_sii_sucur.is_some_and(|c| c > 999_999_999) {
            p.push("company.CdgSIISucur", "out-of-range", "CdgSIISucur has at most 9 digits");
        }
        p.into_result()
    }
}

/// The SII environment a company issues in: certificación (maullin, the test stage every company
/// passes first) or producción (palena). Stored and configured by these names; anything else is
/// an error, never a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Certificacion,
    Produccion,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Certificacion => "certificacion",
            Environment::Produccion => "produccion",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Environment, String> {
        match s {
            "certificacion" => Ok(Environment::Certificacion),
            "produccion" => Ok(Environment::Produccion),
            other => Err(format!("unknown SII environment {other:?} (certificacion or produccion)")),
        }
    }
}
