//! What a printed DTE shows, read from the signed XML (never from the request that made it): the
//! parties, lines, discounts, references, totals and the TED as the timbre must carry it.

use libxml::tree::{Document, Node};

use crate::xml::input::{self, XmlInputError};
use crate::xml::latin1;
use crate::xml::libxml::{self as lx, child, child_text, dte_content, dte_path};

#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error(transparent)]
    Xml(#[from] XmlInputError),
    #[error("not a DTE: {0}")]
    NotDte(String),
    #[error("the envelope holds no DTE with folio {0}")]
    NoSuchFolio(u64),
    #[error("the envelope holds several DTEs: name one with its folio")]
    WhichFolio,
    #[error("{0}")]
    Missing(String),
    #[error("the TED holds a character outside ISO-8859-1")]
    TedEncoding,
    #[error("a cedible copy exists only for facturas, liquidaciones-factura and guías (33, 34, 43, 46, 52), not for type {0}")]
    NotCedible(u16),
    #[error("the logo is not a PNG or JPEG image of at most {0} bytes and 2000 × 2000 pixels")]
    BadLogo(usize),
    #[error("PDF417: {0}")]
    Barcode(String),
    #[error("the document does not verify ({0}); it can be printed only marked NO VÁLIDO (--force)")]
    NotVerified(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Party {
    pub rut: String,
    pub name: String,
    pub giro: Option<String>,
    pub address: Option<String>,
    pub comuna: Option<String>,
    pub ciudad: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub contact: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    pub nro: String,
    /// (TpoCodigo, VlrCodigo)
    pub codes: Vec<(String, String)>,
    pub name: String,
    pub description: Option<String>,
    pub qty: Option<String>,
    pub unit: Option<String>,
    pub price: Option<String>,
    pub discount_pct: Option<String>,
    pub discount: Option<String>,
    pub surcharge_pct: Option<String>,
    pub surcharge: Option<String>,
    /// IndExe: 1 exento, 2 no facturable, …
    pub exempt: Option<String>,
    pub additional_tax: Option<String>,
    pub amount: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GlobalDr {
    /// `D` descuento, `R` recargo.
    pub kind: String,
    pub glosa: Option<String>,
    /// `%` or `$`.
    pub unit: String,
    pub value: String,
    pub exempt: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reference {
    pub tipo: String,
    pub folio: Option<String>,
    pub fecha: Option<String>,
    pub cod_ref: Option<String>,
    pub razon: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transport {
    pub patente: Option<String>,
    pub rut_trans: Option<String>,
    pub chofer: Option<String>,
    pub dir_dest: Option<String>,
    pub cmna_dest: Option<String>,
    pub ciudad_dest: Option<String>,
}

/// One total as the XML has it: its element name and value (ImptoReten: `ImptoReten:<TipoImp>`).
pub type Total = (String, String);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrintDoc {
    pub tipo: u16,
    pub folio: u64,
    pub fch_emis: String,
    pub fch_venc: Option<String>,
    pub fma_pago: Option<String>,
    pub ind_traslado: Option<String>,
    pub tipo_despacho: Option<String>,
    pub ind_servicio: Option<String>,
    pub emisor: Party,
    pub receptor: Option<Party>,
    pub transport: Option<Transport>,
    /// An export's customs data as label and value, codes named from the Aduana's tables.
    pub customs: Vec<(String, String)>,
    pub lines: Vec<Line>,
    pub globals: Vec<GlobalDr>,
    pub references: Vec<Reference>,
    pub totals: Vec<Total>,
    /// The TED as the timbre carries it: flattened, no namespace, ISO-8859-1.
    pub ted: Vec<u8>,
}

fn text(n: &Node, name: &str) -> Option<String> {
    child_text(n, name).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn party(n: &Node, rut: &str, names: &[&str], giro: &str, dir: &str, cmna: &str, ciudad: &str) -> Party {
    Party {
        rut: text(n, rut).unwrap_or_default(),
        name: names.iter().find_map(|k| text(n, k)).unwrap_or_default(),
        giro: text(n, giro),
        address: text(n, dir),
        comuna: text(n, cmna),
        ciudad: text(n, ciudad),
        phone: text(n, "Telefono"),
        email: text(n, if rut == "RUTEmisor" { "CorreoEmisor" } else { "CorreoRecep" }),
        contact: text(n, "Contacto"),
    }
}

/// The DTE to print: the root DTE, or the one with `folio` inside an EnvioDTE / EnvioBOLETA.
fn dte_node(doc: &Document, folio: Option<u64>) -> Result<Node, PrintError> {
    let root = doc.get_root_element().ok_or_else(|| PrintError::NotDte("empty document".into()))?;
    match root.get_name().as_str() {
        "DTE" => Ok(root),
        "EnvioDTE" | "EnvioBOLETA" => {
            let set = child(&root, "SetDTE").ok_or_else(|| PrintError::NotDte("no SetDTE".into()))?;
            let dtes: Vec<Node> = set.get_child_elements().into_iter().filter(|c| c.get_name() == "DTE").collect();
            let folio_of = |d: &Node| {
                dte_path(d, &["Encabezado", "IdDoc", "Folio"]).and_then(|f| f.get_content().trim().parse().ok())
            };
            match folio {
                Some(f) => dtes.into_iter().find(|d| folio_of(d) == Some(f)).ok_or(PrintError::NoSuchFolio(f)),
                None if dtes.len() == 1 => Ok(dtes.into_iter().next().ok_or(PrintError::WhichFolio)?),
                None => Err(PrintError::WhichFolio),
            }
        }
        other => Err(PrintError::NotDte(format!("the root element is {other}"))),
    }
}

impl PrintDoc {
    /// Reads a signed DTE (or one DTE of an envelope) through the untrusted-XML entry point.
    pub fn from_xml(bytes: &[u8], folio: Option<u64>) -> Result<PrintDoc, PrintError> {
        let (doc, _) = input::parse(bytes)?;
        let dte = dte_node(&doc, folio)?;
        let documento = dte_content(&dte).ok_or_else(|| PrintError::NotDte("no Documento".into()))?;
        let enc = child(&documento, "Encabezado").ok_or_else(|| PrintError::Missing("no Encabezado".into()))?;
        let id = child(&enc, "IdDoc").ok_or_else(|| PrintError::Missing("no IdDoc".into()))?;
        let tipo =
            text(&id, "TipoDTE").and_then(|t| t.parse().ok()).ok_or_else(|| PrintError::Missing("TipoDTE".into()))?;
        let folio =
            text(&id, "Folio").and_then(|t| t.parse().ok()).ok_or_else(|| PrintError::Missing("Folio".into()))?;
        let emisor = child(&enc, "Emisor").ok_or_else(|| PrintError::Missing("no Emisor".into()))?;
        let mut out = PrintDoc {
            tipo,
            folio,
            fch_emis: text(&id, "FchEmis").unwrap_or_default(),
            fch_venc: text(&id, "FchVenc"),
            fma_pago: text(&id, "FmaPago"),
            ind_traslado: text(&id, "IndTraslado"),
            tipo_despacho: text(&id, "TipoDespacho"),
            ind_servicio: text(&id, "IndServicio"),
            emisor: party(
                &emisor,
                "RUTEmisor",
                &["RznSoc", "RznSocEmisor"],
                "GiroEmis",
                "DirOrigen",
                "CmnaOrigen",
                "CiudadOrigen",
            ),
            receptor: child(&enc, "Receptor")
                .map(|r| party(&r, "RUTRecep", &["RznSocRecep"], "GiroRecep", "DirRecep", "CmnaRecep", "CiudadRecep")),
            ..PrintDoc::default()
        };
        if out.emisor.giro.is_none() {
            out.emisor.giro = text(&emisor, "GiroEmisor");
        }
        out.transport = child(&enc, "Transporte").map(|t| Transport {
            patente: text(&t, "Patente"),
            rut_trans: text(&t, "RUTTrans"),
            chofer: child(&t, "Chofer").and_then(|c| text(&c, "NombreChofer")),
            dir_dest: text(&t, "DirDest"),
            cmna_dest: text(&t, "CmnaDest"),
            ciudad_dest: text(&t, "CiudadDest"),
        });
        out.customs = customs(&id, child(&enc, "Transporte").and_then(|t| child(&t, "Aduana")));
        for d in documento.get_child_elements() {
            match d.get_name().as_str() {
                "Detalle" => out.lines.push(line(&d)),
                "DscRcgGlobal" => out.globals.push(GlobalDr {
                    kind: text(&d, "TpoMov").unwrap_or_default(),
                    glosa: text(&d, "GlosaDR"),
                    unit: text(&d, "TpoValor").unwrap_or_default(),
                    value: text(&d, "ValorDR").unwrap_or_default(),
                    exempt: text(&d, "IndExeDR"),
                }),
                "Referencia" => out.references.push(Reference {
                    tipo: text(&d, "TpoDocRef").unwrap_or_default(),
                    folio: text(&d, "FolioRef"),
                    fecha: text(&d, "FchRef"),
                    cod_ref: text(&d, "CodRef"),
                    razon: text(&d, "RazonRef"),
                }),
                "TED" => out.ted = ted_bytes(&d)?,
                _ => {}
            }
        }
        if let Some(t) = child(&enc, "Totales") {
            for e in t.get_child_elements() {
                let name = e.get_name();
                if name == "ImptoReten" {
                    if let (Some(k), Some(v)) = (text(&e, "TipoImp"), text(&e, "MontoImp")) {
                        out.totals.push((format!("ImptoReten:{k}"), v));
                    }
                } else if name == "Comisiones" {
                    // A liquidación-factura's commissions: each of its sums on a line of its own.
                    for c in e.get_child_elements() {
                        let v = c.get_content().trim().to_string();
                        if !v.is_empty() && v != "0" {
                            out.totals.push((c.get_name(), v));
                        }
                    }
                } else if let Some(v) = Some(e.get_content().trim().to_string()).filter(|v| !v.is_empty()) {
                    out.totals.push((name, v));
                }
            }
        }
        // The total in the other currency, with its rate.
        if let Some(o) = child(&enc, "OtraMoneda") {
            if let (Some(m), Some(v)) = (text(&o, "TpoMoneda"), text(&o, "MntTotOtrMnda")) {
                if let Some(r) = text(&o, "TpoCambio") {
                    out.totals.push(("TpoCambio".into(), r));
                }
                out.totals.push((format!("MntTotOtrMnda:{m}"), v));
            }
        }
        if out.ted.is_empty() {
            return Err(PrintError::Missing("the document has no TED".into()));
        }
        Ok(out)
    }

    pub fn total(&self, name: &str) -> Option<&str> {
        self.totals.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// An export's payment form and customs data, each code with its Aduana name.
fn customs(id: &Node, aduana: Option<Node>) -> Vec<(String, String)> {
    use crate::domain::aduana::Table;
    let named = |t: Table, v: Option<String>| {
        v.map(|c| c.parse().ok().and_then(|n| t.by_code(n)).map_or(c, |r| r.sigla().to_string()))
    };
    let mut out = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k.to_string(), v));
        }
    };
    push("Pago exp.:", named(Table::FormaPagoExportacion, text(id, "FmaPagExp")));
    let Some(a) = aduana else { return out };
    push("Modalidad:", named(Table::ModalidadVenta, text(&a, "CodModVenta")));
    let clausula = named(Table::ClausulaVenta, text(&a, "CodClauVenta"));
    push(
        "Cláusula:",
        match (clausula, text(&a, "TotClauVenta")) {
            (Some(c), Some(t)) => Some(format!("{c} {}", super::names::amount(&t))),
            (c, _) => c,
        },
    );
    push("Vía:", named(Table::ViaTransporte, text(&a, "CodViaTransp")));
    push("Embarque:", named(Table::Puertos, text(&a, "CodPtoEmbarque")));
    push("Desembarque:", named(Table::Puertos, text(&a, "CodPtoDesemb")));
    push("País destino:", named(Table::Paises, text(&a, "CodPaisDestin")));
    push("Bultos:", text(&a, "TotBultos"));
    push("Flete:", text(&a, "MntFlete").map(|v| super::names::amount(&v)));
    push("Seguro:", text(&a, "MntSeguro").map(|v| super::names::amount(&v)));
    out
}

fn line(d: &Node) -> Line {
    Line {
        nro: text(d, "NroLinDet").unwrap_or_default(),
        codes: d
            .get_child_elements()
            .into_iter()
            .filter(|c| c.get_name() == "CdgItem")
            .map(|c| (text(&c, "TpoCodigo").unwrap_or_default(), text(&c, "VlrCodigo").unwrap_or_default()))
            .collect(),
        name: text(d, "NmbItem").unwrap_or_default(),
        description: text(d, "DscItem"),
        qty: text(d, "QtyItem"),
        unit: text(d, "UnmdItem"),
        price: text(d, "PrcItem"),
        discount_pct: text(d, "DescuentoPct"),
        discount: text(d, "DescuentoMonto"),
        surcharge_pct: text(d, "RecargoPct"),
        surcharge: text(d, "RecargoMonto"),
        exempt: text(d, "IndExe"),
        additional_tax: text(d, "CodImpAdic"),
        amount: text(d, "MontoItem").unwrap_or_default(),
    }
}

/// The TED as signed: flattened (no whitespace between tags, no namespace) in ISO-8859-1.
fn ted_bytes(ted: &Node) -> Result<Vec<u8>, PrintError> {
    latin1::encode(&lx::flatten(ted, false)).map_err(|_| PrintError::TedEncoding)
}
