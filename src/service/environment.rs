//! Moving a company between the SII's environments (certificación → producción, or back).

use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{CompanyInfo, Result, Service, ServiceError};
use crate::domain::company::Resolucion;
use crate::store::{Environment, NewAudit};

/// `PUT /v1/companies/{rut}/environment`: the environment, and its resolution when the company
/// does not hold it yet.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentChange {
    pub environment: Environment,
    #[serde(rename = "FchResol", default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub fch_resol: Option<chrono::NaiveDate>,
    #[serde(rename = "NroResol", default)]
    pub nro_resol: Option<u32>,
}

/// CAF authorities usable in an environment: the SII's own key of that environment (and the test
/// authority in certificación).
pub fn cafs_of(env: Environment) -> &'static [&'static str] {
    match env {
        Environment::Certificacion => &["SiiCertificacion", "Test"],
        Environment::Produccion => &["SiiProduccion"],
    }
}

impl Service {
    /// Switches the company's environment. The Carátula takes that environment's resolution; CAFs
    /// of the other environment are retired (their folios are not valid there); and while a
    /// document waits to be sent or for the SII's verdict the switch is refused, since it would
    /// reach the other environment's SII.
    pub async fn set_environment(&self, rut: &str, change: EnvironmentChange, by: &str) -> Result<(CompanyInfo, u64)> {
        let info = self.company(rut).await?;
        let given = match (change.fch_resol, change.nro_resol) {
            (Some(fch_resol), Some(nro_resol)) => Some(Resolucion { fch_resol, nro_resol }),
            (None, None) => None,
            _ => {
                return Err(crate::DteError::single(
                    "FchResol",
                    "required",
                    "a resolution is FchResol and NroResol together",
                )
                .into())
            }
        };
        if info.environment == change.environment && given.is_none() {
            return Ok((info, 0));
        }
        let mut company = info.company.clone();
        company.settle_resolution(change.environment, given)?;
        let r = company.resolucion();
        let audit = NewAudit {
            scope: rut.into(),
            action: "company.environment",
            subject: rut.into(),
            data: format!(
                "{} -> {}; FchResol {} NroResol {}; by {by}",
                info.environment.as_str(),
                change.environment.as_str(),
                r.fch_resol,
                r.nro_resol
            ),
        };
        let retired = self
            .store
            .switch_environment(rut, &company, change.environment, cafs_of(change.environment), audit, Utc::now())
            .await
            .map_err(ServiceError::from)?;
        if let Ok(mut m) = self.companies.lock() {
            m.remove(rut);
        }
        Ok((self.company(rut).await?, retired))
    }
}
