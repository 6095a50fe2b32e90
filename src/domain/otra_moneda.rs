//! Foreign currency on a document in pesos (facturas 33 / 34 and their notas 56 / 61): the sale
//! is agreed in another currency, the document's own amounts are whole pesos, and `OtraMoneda`
//! gives them in that currency at the client's exchange rate (pesos per unit, the SII's
//! "tipo de cambio"). Either the lines are priced in the other currency (`Detalle/OtrMnda/
//! PrcOtrMon`): each peso `PrcItem` is PrcOtrMon × TpoCambio (6 decimals, the schema's
//! `Dec12_6Type`), the document is computed twice — in the other currency to 4 decimals, in pesos
//! to whole pesos — and each set of totals holds its own identities; or the lines are priced in
//! pesos and each total is converted once, divided by the rate to 4 decimals.

use rust_decimal::{Decimal, RoundingStrategy};

use super::document::{DocumentInput, TipoDte};
use super::limits::check_dec;
use crate::error::Problems;

/// The types whose amounts may also be given in another currency.
pub fn allowed(tipo: TipoDte) -> bool {
    matches!(tipo, TipoDte::Factura | TipoDte::FacturaExenta | TipoDte::NotaDebito | TipoDte::NotaCredito)
}

/// The 3-letter code of the SII's common currency names, for `OtrMnda/Moneda`.
fn iso(name: &str) -> Option<&'static str> {
    Some(match name {
        "DOLAR USA" => "USD",
        "EURO" => "EUR",
        "LIBRA EST" => "GBP",
        "YEN" => "JPY",
        "DOLAR CAN" => "CAD",
        "DOLAR AUST" => "AUD",
        "DOLAR NZ" => "NZD",
        "FRANCO SZ" => "CHF",
        "RENMINBI" => "CNY",
        "PESO MEX" => "MXN",
        "PESO COL" => "COP",
        "PESO URUG" => "UYU",
        "NUEVO SOL" => "PEN",
        "GUARANI" => "PYG",
        "BOLIVIANO" => "BOB",
        _ => return None,
    })
}

/// Whether the lines are priced in the other currency.
pub fn priced_in_other(doc: &DocumentInput) -> bool {
    doc.detalle.iter().any(|d| d.otr_mnda.is_some())
}

/// The rules of `OtraMoneda` (its currency written as the schema's name, other than `operation`,
/// the document's own; its rate) and of `OtrMnda` on a document in pesos, whose lines' peso
/// `PrcItem`, `Moneda` and `FctConv` are filled from their price in the other currency.
pub fn check(doc: &mut DocumentInput, tipo: TipoDte, operation: &str, p: &mut Problems) {
    let Some(o) = doc.encabezado.otra_moneda.as_mut() else {
        for (i, d) in doc.detalle.iter().enumerate() {
            if d.otr_mnda.is_some() {
                p.push(format!("Detalle[{i}].OtrMnda"), "not-allowed", "OtrMnda needs Encabezado.OtraMoneda");
            }
        }
        return;
    };
    let b = "Encabezado.OtraMoneda";
    super::aduana::moneda(p, &format!("{b}.TpoMoneda"), &mut o.tpo_moneda);
    if operation == o.tpo_moneda {
        p.push(format!("{b}.TpoMoneda"), "mismatch", "OtraMoneda is another currency than the document's own");
    }
    let before = p.0.len();
    match o.tpo_cambio {
        Some(r) => check_dec(p, &format!("{b}.TpoCambio"), r, 6, 4, true),
        None => p.push(format!("{b}.TpoCambio"), "required", "the exchange rate is needed to compute OtraMoneda"),
    }
    let rate_ok = p.0.len() == before;
    let o = o.clone();
    if tipo.is_export() {
        for (i, d) in doc.detalle.iter().enumerate() {
            if d.otr_mnda.is_some() {
                p.push(
                    format!("Detalle[{i}].OtrMnda"),
                    "not-allowed",
                    "an export's lines are priced in its operation currency (Totales.TpoMoneda)",
                );
            }
        }
        return;
    }
    if !allowed(tipo) {
        p.push(
            "Encabezado.OtraMoneda",
            "not-allowed",
            "OtraMoneda applies to facturas (33, 34), their notas (56, 61) and exports (110, 111, 112)",
        );
        return;
    }
    if !priced_in_other(doc) {
        return;
    }
    let Some(rate) = o.tpo_cambio else { return };
    let moneda = iso(&o.tpo_moneda);
    for (i, d) in doc.detalle.iter_mut().enumerate() {
        let b = format!("Detalle[{i}]");
        let Some(m) = d.otr_mnda.as_mut() else {
            p.push(
                format!("{b}.OtrMnda"),
                "required",
                "when one line is priced in the other currency, every line is (OtrMnda.PrcOtrMon)",
            );
            continue;
        };
        let before = p.0.len();
        check_dec(p, &format!("{b}.OtrMnda.PrcOtrMon"), m.prc_otr_mon, 12, 6, true);
        let price_ok = p.0.len() == before;
        if d.prc_item.is_some() {
            p.push(format!("{b}.PrcItem"), "not-allowed", "PrcItem is computed: OtrMnda.PrcOtrMon × TpoCambio");
        }
        if d.descuento_monto.is_some() || d.recargo_monto.is_some() {
            p.push(
                b.clone(),
                "not-allowed",
                "a line priced in another currency takes its discount or surcharge as a percentage",
            );
        }
        if m.fct_conv.is_some_and(|f| f != rate) {
            p.push(format!("{b}.OtrMnda.FctConv"), "mismatch", format!("FctConv is the document's TpoCambio, {rate}"));
        }
        match (&m.moneda, moneda) {
            (Some(c), _) if c.is_empty() || c.chars().count() > 3 => {
                p.push(format!("{b}.OtrMnda.Moneda"), "out-of-range", "a currency code of up to 3 letters (USD)")
            }
            (Some(_), _) => {}
            (None, Some(c)) => m.moneda = Some(c.to_string()),
            (None, None) => {
                p.push(format!("{b}.OtrMnda.Moneda"), "required", format!("give the 3-letter code of {}", o.tpo_moneda))
            }
        }
        m.fct_conv = Some(rate);
        // Only from values within their types (refused ones are reported above): the product of
        // a 12-digit price and a 6-digit rate fits a Decimal; anything may come in.
        if price_ok && rate_ok {
            d.prc_item = m
                .prc_otr_mon
                .checked_mul(rate)
                .map(|v| v.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero).normalize());
        }
    }
    for (i, g) in doc.dsc_rcg_global.iter().enumerate() {
        if g.tpo_valor != "%" {
            p.push(
                format!("DscRcgGlobal[{i}].TpoValor"),
                "not-allowed",
                "a document priced in another currency takes global discounts as a percentage",
            );
        }
    }
}

/// A peso amount in the other currency: divided by the rate, rounded once to 4 decimals.
pub fn from_pesos(v: Decimal, rate: Decimal) -> Decimal {
    if rate.is_zero() {
        return Decimal::ZERO;
    }
    (v / rate).round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero).normalize()
}
