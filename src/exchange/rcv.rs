//! The Registro de Aceptación o Reclamo (RCV) of received DTEs, as the SII's web service
//! "Consulta y Registro de Aceptación/Reclamo a DTE recibido" v1.2 defines it: the five actions,
//! the response codes and the 8-day window of Ley 19.983 (art. 3, as amended by Ley 20.956).

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

/// The states of a received document: undecided, then by the decision taken (or by law).
pub const RECEIVED_STATES: [&str; 6] =
    ["received", "accepted", "goods_received", "claimed", "rejected", "accepted_by_law"];

/// Document types the RCV registers acceptance and claims for.
pub const RCV_TYPES: [u16; 3] = [33, 34, 43];

pub fn in_rcv(tipo: u16) -> bool {
    RCV_TYPES.contains(&tipo)
}

/// `accionDoc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Accion {
    /// Acepta Contenido del Documento.
    #[serde(rename = "ACD")]
    Acd,
    /// Otorga Recibo de Mercaderías o Servicios (Ley 19.983).
    #[serde(rename = "ERM")]
    Erm,
    /// Reclamo al Contenido del Documento.
    #[serde(rename = "RCD")]
    Rcd,
    /// Reclamo por Falta Parcial de Mercaderías.
    #[serde(rename = "RFP")]
    Rfp,
    /// Reclamo por Falta Total de Mercaderías.
    #[serde(rename = "RFT")]
    Rft,
}

impl Accion {
    pub const ALL: [Accion; 5] = [Accion::Acd, Accion::Erm, Accion::Rcd, Accion::Rfp, Accion::Rft];

    pub fn code(self) -> &'static str {
        match self {
            Accion::Acd => "ACD",
            Accion::Erm => "ERM",
            Accion::Rcd => "RCD",
            Accion::Rfp => "RFP",
            Accion::Rft => "RFT",
        }
    }
    pub fn parse(s: &str) -> Option<Accion> {
        Accion::ALL.into_iter().find(|a| a.code().eq_ignore_ascii_case(s.trim()))
    }
    pub fn is_claim(self) -> bool {
        matches!(self, Accion::Rcd | Accion::Rfp | Accion::Rft)
    }
    pub fn description(self) -> &'static str {
        event_description(self.code())
    }
    /// The state a received document takes after this action.
    pub fn state(self) -> &'static str {
        match self {
            Accion::Acd => "accepted",
            Accion::Erm => "goods_received",
            Accion::Rcd | Accion::Rfp | Accion::Rft => "claimed",
        }
    }
}

/// The SII's descriptions of the event codes `listarEventosHistDoc` returns.
pub fn event_description(code: &str) -> &'static str {
    match code {
        "ACD" => "Acepta Contenido del Documento",
        "ERM" => "Otorga Recibo de Mercaderías o Servicios",
        "RCD" => "Reclamo al Contenido del Documento",
        "RFP" => "Reclamo por Falta Parcial de Mercaderías",
        "RFT" => "Reclamo por Falta Total de Mercaderías",
        "NCA" => "Recepción de NC de Anulación que referencia al documento",
        "ENC" => "Recepción de NC, distinta de anulación, que referencia al documento",
        _ => "Evento",
    }
}

/// The RCV's transition rules (spec v1.2) for `accion` on a document whose events are `done`:
/// the `codResp` the SII gives (0 allowed, 7 registered before, 6/11/12/13 refused).
pub fn transition(done: &[String], accion: Accion) -> i32 {
    let has = |c: &str| done.iter().any(|e| e == c);
    let claimed = ["RCD", "RFP", "RFT"].iter().any(|c| has(c));
    match accion {
        Accion::Acd if has("ACD") => 7,
        Accion::Acd if claimed => 12,
        Accion::Erm if has("ERM") => 7,
        Accion::Erm if claimed => 6,
        a if a.is_claim() && has(a.code()) => 7,
        a if a.is_claim() && has("ACD") => 11,
        a if a.is_claim() && has("ERM") => 13,
        _ => 0,
    }
}

/// `codResp` of the service, as the spec v1.2 lists them.
pub fn cod_resp_description(code: i32) -> &'static str {
    match code {
        0 => "Acción Completada OK",
        1 => "Error en Rut Emisor",
        2 => "Error en Folio",
        3 => "Tipo de documento no corresponde",
        4 => "Acción inválida",
        5 => "DTE ya fue reclamado",
        6 => "No se puede acusar recibo de DTE previamente reclamado",
        7 => "Evento registrado previamente",
        8 => "Pasados 8 días después de la recepción no es posible registrar reclamos o eventos",
        9 => "No existen registros",
        10 => "Documento no fue emitido/recibido desde el 14-01-2017",
        11 => "No se puede reclamar DTE previamente aceptado",
        12 => "No se puede dar por aceptado DTE previamente rechazado",
        13 => "No se puede reclamar DTE con acuse de recibo",
        14 => "Acción autorizada sólo para receptora o emisora",
        15 => "Listado de eventos del documento",
        16 => "No existen eventos registrados",
        17 => "Acción autorizada sólo para receptora",
        18 => "Documento no ha sido recibido por el SII",
        19 => "Reclamo ya realizado",
        20 => "Tipo de documento no cedible",
        21 => "DTE no cedible: NC de anulación en los primeros 8 días",
        22 => "DTE cedible, sin reclamo ni recibo registrado",
        23 => "DTE cedible, sin reclamos",
        24 => "DTE no cedible, reclamado",
        25 => "DTE cedible, 8 días cumplidos",
        -1 => "Error interno, reintente más tarde",
        _ => "Código desconocido",
    }
}

/// What an `ingresarAceptacionReclamoDoc` answer means to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Recorded now (0) or earlier (7: the same action twice is the same decision).
    Done { already: bool },
    /// The 8-day window closed (8).
    PastDeadline,
    /// The SII had an internal error (−1): try again later.
    Retry,
    /// Refused by the transition rules or the document's data.
    Refused { code: i32, description: String },
}

pub fn registered(code: i32, description: &str) -> Registered {
    match code {
        0 => Registered::Done { already: false },
        7 => Registered::Done { already: true },
        8 => Registered::PastDeadline,
        -1 => Registered::Retry,
        c => Registered::Refused {
            code: c,
            description: if description.trim().is_empty() {
                cod_resp_description(c).to_string()
            } else {
                description.trim().to_string()
            },
        },
    }
}

/// One event of a document's RCV history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Evento {
    pub code: String,
    pub description: String,
    pub responsible: Option<String>,
    pub at: NaiveDateTime,
}

/// The SII's date format in this service: `DD-MM-YYYY HH:MM:SS`.
pub fn parse_sii_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%d-%m-%Y %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()
}

pub fn format_sii_datetime(t: NaiveDateTime) -> String {
    t.format("%d-%m-%Y %H:%M:%S").to_string()
}

/// The last moment a decision can be registered: the 8th calendar day after the reception at the
/// SII, to its end (SII FAQ 001_003_6914: received 1 January at 20:00, the window ends 9 January
/// at 23:59).
pub fn deadline(reception: NaiveDateTime) -> NaiveDateTime {
    let last: NaiveDate = reception.date() + Duration::days(8);
    last.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default())
}

/// Whole days left until the deadline (0 on its last day, negative after it).
pub fn days_left(deadline: NaiveDateTime, now: NaiveDateTime) -> i64 {
    (deadline.date() - now.date()).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        parse_sii_datetime(s).unwrap()
    }

    #[test]
    fn the_window_is_eight_calendar_days_to_the_end_of_the_day() {
        let d = deadline(at("01-01-2026 20:00:00"));
        assert_eq!(d, at("09-01-2026 23:59:59"));
        assert_eq!(days_left(d, at("01-01-2026 21:00:00")), 8);
        assert_eq!(days_left(d, at("09-01-2026 23:00:00")), 0);
        assert_eq!(days_left(d, at("10-01-2026 00:00:01")), -1);
    }

    #[test]
    fn codes_map_to_outcomes() {
        assert_eq!(registered(7, "Evento registrado previamente"), Registered::Done { already: true });
        assert_eq!(registered(8, ""), Registered::PastDeadline);
        assert_eq!(registered(-1, ""), Registered::Retry);
        assert!(matches!(registered(11, ""), Registered::Refused { code: 11, .. }));
        assert_eq!(Accion::parse("rcd"), Some(Accion::Rcd));
        assert!(Accion::Rft.is_claim() && !Accion::Erm.is_claim());
    }
}
