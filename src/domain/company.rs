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
    /// The resolution of each SII environment. The SII checks the Carátula's `FchResol`/`NroResol`
    /// against the environment it arrives at (a certificación resolution sent to producción is
    /// rejected, `CRT-3-19`), so `FchResol`/`NroResol` above are always those of the environment
    /// the company issues in, and switching environment takes them from here.
    #[serde(rename = "Resoluciones", default, skip_serializing_if = "Resoluciones::is_empty")]
    pub resoluciones: Resoluciones,
}

/// An SII resolution authorising a company to issue electronic documents.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Resolucion {
    #[serde(rename = "FchResol")]
    pub fch_resol: NaiveDate,
    #[serde(rename = "NroResol")]
    pub nro_resol: u32,
}

/// The resolution per environment (certificación: the date the SII gave, number 0 in its own
/// sample; producción: the resolution's date and number).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Resoluciones {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificacion: Option<Resolucion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produccion: Option<Resolucion>,
}

impl Resoluciones {
    pub fn is_empty(&self) -> bool {
        self.certificacion.is_none() && self.produccion.is_none()
    }

    pub fn of(&self, env: Environment) -> Option<Resolucion> {
        match env {
            Environment::Certificacion => self.certificacion,
            Environment::Produccion => self.produccion,
        }
    }

    pub fn set(&mut self, env: Environment, r: Resolucion) {
        match env {
            Environment::Certificacion => self.certificacion = Some(r),
            Environment::Produccion => self.produccion = Some(r),
        }
    }
}

impl Company {
    /// The resolution the Carátula carries now.
    pub fn resolucion(&self) -> Resolucion {
        Resolucion { fch_resol: self.fch_resol, nro_resol: self.nro_resol }
    }

    /// Makes the company issue with `env`'s resolution. At registration the top-level
    /// `FchResol`/`NroResol` are that environment's (kept in `Resoluciones` too); a switch needs the
    /// target environment's resolution, given now or earlier, and refuses the other
    /// environment's.
    pub fn settle_resolution(&mut self, env: Environment, given: Option<Resolucion>) -> Result<(), DteError> {
        let name = env.as_str();
        let path = format!("company.Resoluciones.{name}");
        if let Some(r) = given {
            if r.nro_resol > 999_999 {
                return Err(DteError::single(
                    format!("{path}.NroResol"),
                    "out-of-range",
                    "NroResol has at most 6 digits",
                ));
            }
            self.resoluciones.set(env, r);
        }
        let Some(r) = self.resoluciones.of(env) else {
            return Err(DteError::single(
                path,
                "resolution-required",
                format!("issuing in {name} needs that environment's resolution (FchResol and NroResol) as the SII granted it"),
            ));
        };
        let other = match env {
            Environment::Certificacion => Environment::Produccion,
            Environment::Produccion => Environment::Certificacion,
        };
        if self.resoluciones.of(other) == Some(r) {
            return Err(DteError::single(
                path,
                "resolution-environment",
                format!("this is the {} resolution; the SII rejects it in {name} (CRT-3-19)", other.as_str()),
            ));
        }
        self.fch_resol = r.fch_resol;
        self.nro_resol = r.nro_resol;
        Ok(())
    }

    /// At registration in `env`: the top-level resolution is that environment's, and must agree
    /// with `Resoluciones` when both are given.
    pub fn register_resolution(&mut self, env: Environment) -> Result<(), DteError> {
        let top = self.resolucion();
        match self.resoluciones.of(env) {
            Some(r) if r != top => Err(DteError::single(
                "company.FchResol",
                "mismatch",
                format!("FchResol/NroResol must be the {} resolution given in Resoluciones", env.as_str()),
            )),
            _ => self.settle_resolution(env, Some(top)),
        }
    }

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
        for (env, r) in
            [("certificacion", self.resoluciones.certificacion), ("produccion", self.resoluciones.produccion)]
        {
            if r.is_some_and(|r| r.nro_resol > 999_999) {
                p.push(format!("company.Resoluciones.{env}.NroResol"), "out-of-range", "NroResol has at most 6 digits");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn company() -> Company {
        Company::from_json(include_bytes!("../../examples/company.json")).expect("example company")
    }

    fn res(y: i32, m: u32, d: u32, n: u32) -> Resolucion {
        Resolucion { fch_resol: NaiveDate::from_ymd_opt(y, m, d).expect("date"), nro_resol: n }
    }

    #[test]
    fn each_environment_has_its_resolution_and_a_switch_needs_the_target_one() {
        let mut c = company();
        c.register_resolution(Environment::Certificacion).expect("registered");
        assert_eq!(c.resoluciones.certificacion, Some(res(2014, 8, 22, 80)));
        // Producción without its resolution, or with certificación's, is refused; nothing moves.
        let e = c.settle_resolution(Environment::Produccion, None).unwrap_err();
        assert!(e.to_string().contains("resolution"), "{e}");
        let e = c.settle_resolution(Environment::Produccion, Some(res(2014, 8, 22, 80))).unwrap_err();
        assert!(e.to_string().contains("CRT-3-19"), "{e}");
        assert_eq!(c.resolucion(), res(2014, 8, 22, 80));
        // With its own, the Carátula's values are producción's; back in certificación, the held one.
        c.resoluciones.produccion = None;
        c.settle_resolution(Environment::Produccion, Some(res(2024, 5, 2, 123))).expect("switched");
        assert_eq!((c.fch_resol, c.nro_resol), (res(2024, 5, 2, 123).fch_resol, 123));
        c.settle_resolution(Environment::Certificacion, None).expect("back");
        assert_eq!(c.resolucion(), res(2014, 8, 22, 80));
    }

    #[test]
    fn registration_refuses_a_top_level_resolution_other_than_the_environments() {
        let mut c = company();
        c.resoluciones.certificacion = Some(res(2003, 9, 2, 0));
        assert!(c.register_resolution(Environment::Certificacion).is_err());
        let mut c = company();
        c.resoluciones.produccion = Some(res(2024, 5, 2, 123));
        c.register_resolution(Environment::Certificacion).expect("both held");
        assert_eq!(c.resoluciones.of(Environment::Produccion), Some(res(2024, 5, 2, 123)));
    }
}
