//! The names and number formats a printed DTE uses: the SII's official document names (Manual de
//! Muestras Impresas: the document box holds the name as the SII writes it), reference types, and
//! amounts and dates as Chileans read them.

/// The name in the document box.
pub fn document_name(tipo: u16) -> String {
    match tipo {
        33 => "FACTURA ELECTRÓNICA",
        34 => "FACTURA NO AFECTA O EXENTA ELECTRÓNICA",
        39 => "BOLETA ELECTRÓNICA",
        41 => "BOLETA NO AFECTA O EXENTA ELECTRÓNICA",
        43 => "LIQUIDACIÓN FACTURA ELECTRÓNICA",
        46 => "FACTURA DE COMPRA ELECTRÓNICA",
        52 => "GUÍA DE DESPACHO ELECTRÓNICA",
        56 => "NOTA DE DÉBITO ELECTRÓNICA",
        61 => "NOTA DE CRÉDITO ELECTRÓNICA",
        110 => "FACTURA DE EXPORTACIÓN ELECTRÓNICA",
        111 => "NOTA DE DÉBITO DE EXPORTACIÓN ELECTRÓNICA",
        112 => "NOTA DE CRÉDITO DE EXPORTACIÓN ELECTRÓNICA",
        _ => return format!("DOCUMENTO TRIBUTARIO ELECTRÓNICO {tipo}"),
    }
    .to_string()
}

/// The cedible copy's legend, for the types that have one (SII: facturas and guías travel with
/// a third copy that can be assigned to a factoring company); `None` for the others.
pub fn cedible_legend(tipo: u16) -> Option<&'static str> {
    match tipo {
        33 | 34 | 43 | 46 => Some("CEDIBLE"),
        52 => Some("CEDIBLE CON SU FACTURA"),
        _ => None,
    }
}

/// The acuse de recibo text of the cedible copy (Ley 19.983).
pub const ACUSE_DE_RECIBO: &str =
    "El acuse de recibo que se declara en este acto, de acuerdo a lo dispuesto en la letra b) \
del Art. 4°, y la letra c) del Art. 5° de la Ley 19.983, acredita que la entrega de mercaderías o servicio(s) \
prestado(s) ha(n) sido recibido(s).";

/// TpoDocRef codes (DTE_v10.xsd, `DocRefType`, and the SII's table of referenced documents).
pub fn reference_name(code: &str) -> String {
    let name = match code {
        "30" => "Factura",
        "32" => "Factura de venta bienes y servicios no afectos o exentos de IVA",
        "33" => "Factura electrónica",
        "34" => "Factura no afecta o exenta electrónica",
        "35" => "Boleta",
        "38" => "Boleta exenta",
        "39" => "Boleta electrónica",
        "40" => "Liquidación factura",
        "41" => "Boleta exenta electrónica",
        "43" => "Liquidación factura electrónica",
        "45" => "Factura de compra",
        "46" => "Factura de compra electrónica",
        "50" => "Guía de despacho",
        "52" => "Guía de despacho electrónica",
        "55" => "Nota de débito",
        "56" => "Nota de débito electrónica",
        "60" => "Nota de crédito",
        "61" => "Nota de crédito electrónica",
        "103" => "Liquidación",
        "110" => "Factura de exportación electrónica",
        "111" => "Nota de débito de exportación electrónica",
        "112" => "Nota de crédito de exportación electrónica",
        "801" => "Orden de compra",
        "802" => "Nota de pedido",
        "803" => "Contrato",
        "804" => "Resolución",
        "805" => "Proceso ChileCompra",
        "806" => "Ficha ChileCompra",
        "807" => "DUS",
        "808" => "B/L (conocimiento de embarque)",
        "809" => "AWB (Air Way Bill)",
        "810" => "MIC/DTA",
        "811" => "Carta de porte",
        "812" => "Resolución del SNA",
        "813" => "Pasaporte",
        "814" => "Certificado de depósito bolsa producto Chile",
        "815" => "Vale de prenda bolsa producto Chile",
        "HES" => "Hoja de entrada de servicios",
        "SET" => "Set de pruebas",
        _ => return format!("Documento {code}"),
    };
    name.to_string()
}

/// CodRef: what a note does to the document it references.
pub fn cod_ref_name(code: &str) -> Option<&'static str> {
    match code {
        "1" => Some("Anula documento de referencia"),
        "2" => Some("Corrige texto del documento de referencia"),
        "3" => Some("Corrige montos"),
        _ => None,
    }
}

/// IndTraslado of a guía de despacho.
pub fn traslado_name(code: &str) -> Option<&'static str> {
    match code {
        "1" => Some("Operación constituye venta"),
        "2" => Some("Ventas por efectuar"),
        "3" => Some("Consignaciones"),
        "4" => Some("Entrega gratuita"),
        "5" => Some("Traslados internos"),
        "6" => Some("Otros traslados no venta"),
        "7" => Some("Guía de devolución"),
        "8" => Some("Traslado para exportación (no venta)"),
        "9" => Some("Venta para exportación"),
        _ => None,
    }
}

pub fn forma_pago_name(code: &str) -> Option<&'static str> {
    match code {
        "1" => Some("Contado"),
        "2" => Some("Crédito"),
        "3" => Some("Sin costo (entrega gratuita)"),
        _ => None,
    }
}

/// A whole amount in Chilean format: `1559588` → `1.559.588`; decimals (foreign currency,
/// quantities) keep a comma: `12.5` → `12,5`.
pub fn amount(raw: &str) -> String {
    let raw = raw.trim();
    let (neg, digits) = match raw.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, raw),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f.trim_end_matches('0')),
        None => (digits, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return raw.to_string();
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut out = String::with_capacity(int.len() + int.len() / 3 + frac.len() + 2);
    if neg {
        out.push('-');
    }
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push(',');
        out.push_str(frac);
    }
    out
}

/// `2026-11-30` → `30-11-2026`.
pub fn date(iso: &str) -> String {
    match iso.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] if y.len() == 4 => format!("{d}-{m}-{y}"),
        _ => iso.to_string(),
    }
}

/// `76192083-9` → `76.192.083-9`.
pub fn rut(raw: &str) -> String {
    match raw.trim().rsplit_once('-') {
        Some((n, dv)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => format!("{}-{dv}", amount(n)),
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chilean_formats() {
        assert_eq!(amount("1559588"), "1.559.588");
        assert_eq!(amount("100"), "100");
        assert_eq!(amount("1000"), "1.000");
        assert_eq!(amount("0"), "0");
        assert_eq!(amount("12.50"), "12,5");
        assert_eq!(amount("1234567.125"), "1.234.567,125");
        assert_eq!(amount("-2500"), "-2.500");
        assert_eq!(amount("abc"), "abc");
        assert_eq!(date("2026-11-30"), "30-11-2026");
        assert_eq!(rut("76192083-9"), "76.192.083-9");
        assert_eq!(rut("8414240-K"), "8.414.240-K");
        assert_eq!(cedible_legend(52), Some("CEDIBLE CON SU FACTURA"));
        assert_eq!(cedible_legend(61), None);
        assert_eq!(document_name(34), "FACTURA NO AFECTA O EXENTA ELECTRÓNICA");
    }
}
