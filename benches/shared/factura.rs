//! What the engine and PDF benches share: the test material and the 5-line factura 33 both
//! measure.

pub fn repo(p: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).expect("test material")
}

/// A 5-line factura 33: a discount, a decimal quantity, an exempt line.
pub fn five_lines() -> serde_json::Value {
    serde_json::json!({
        "Encabezado": {
            "IdDoc": {"TipoDTE": 33, "FchEmis": "2026-11-20"},
            "Receptor": {"RUTRecep": "76555835-2", "RznSocRecep": "Ñandú & Cía. Limitada", "GiroRecep": "Comercio", "DirRecep": "Los Aromos 45", "CmnaRecep": "Ñuñoa"}
        },
        "Detalle": [
            {"NmbItem": "Desarrollo de software", "QtyItem": 1, "PrcItem": 850000},
            {"NmbItem": "Soporte mensual", "QtyItem": 3, "PrcItem": 120000, "DescuentoPct": 10},
            {"NmbItem": "Resma papel carta", "QtyItem": 12.5, "PrcItem": 3990.5},
            {"NmbItem": "Tóner impresora", "QtyItem": 2, "PrcItem": 45990},
            {"NmbItem": "Curso de capacitación", "QtyItem": 1, "PrcItem": 150000, "IndExe": 1}
        ]
    })
}
