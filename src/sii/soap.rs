//! The SII's SOAP services are Axis rpc: every part is a string, the answer is one `<opReturn>`
//! string holding an `SII:RESPUESTA` document (NOTES §2, §4). Both directions live here, for the
//! client and for the simulator.

use std::collections::HashMap;

use crate::xml::libxml::{self as lx};
use crate::xml::writer::{escape_attr, escape_text};

pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SoapError {
    #[error("malformed SOAP: {0}")]
    Malformed(String),
    #[error("SOAP fault: {0}")]
    Fault(String),
}

/// `<soapenv:Envelope>` calling `op` of the service whose namespace is `ns`.
pub fn request(ns: &str, op: &str, params: &[(&str, &str)]) -> String {
    let mut s = String::with_capacity(512);
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    s.push_str(&format!("<soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>"));
    s.push_str(&format!(
        "<ns1:{op} soapenv:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:ns1=\"{}\">",
        escape_attr(ns)
    ));
    for (k, v) in params {
        s.push_str(&format!("<{k} xsi:type=\"xsd:string\">{}</{k}>", escape_text(v)));
    }
    s.push_str(&format!("</ns1:{op}></soapenv:Body></soapenv:Envelope>"));
    s
}

/// The answer of `op`, as Axis writes it.
pub fn response(ns: &str, op: &str, ret: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><ns1:{op}Response soapenv:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:ns1=\"{}\"><{op}Return xsi:type=\"xsd:string\">{}</{op}Return></ns1:{op}Response></soapenv:Body></soapenv:Envelope>",
        escape_attr(ns),
        escape_text(ret)
    )
}

pub fn fault(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Server.userException</faultcode><faultstring>{}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        escape_text(message)
    )
}

fn body(bytes: &[u8]) -> Result<(libxml::tree::Document, libxml::tree::Node), SoapError> {
    let doc = crate::xml::input::parse(bytes).map_err(|e| SoapError::Malformed(e.to_string()))?.0;
    let root = doc.get_root_element().ok_or_else(|| SoapError::Malformed("empty".into()))?;
    if root.get_name() != "Envelope" {
        return Err(SoapError::Malformed(format!("root is {}, not Envelope", root.get_name())));
    }
    let body = lx::child(&root, "Body").ok_or_else(|| SoapError::Malformed("no Body".into()))?;
    let first =
        body.get_child_elements().into_iter().next().ok_or_else(|| SoapError::Malformed("empty Body".into()))?;
    Ok((doc, first))
}

/// The string returned by `op` (the text of `<opReturn>`, entities resolved).
pub fn parse_return(bytes: &[u8], op: &str) -> Result<String, SoapError> {
    let (_doc, first) = body(bytes)?;
    if first.get_name() == "Fault" {
        return Err(SoapError::Fault(lx::child_text(&first, "faultstring").unwrap_or_default()));
    }
    if first.get_name() != format!("{op}Response") {
        return Err(SoapError::Malformed(format!("expected {op}Response, got {}", first.get_name())));
    }
    lx::child_text(&first, &format!("{op}Return")).ok_or_else(|| SoapError::Malformed(format!("no {op}Return")))
}

/// For the simulator: the operation called and its parameters.
pub fn parse_request(bytes: &[u8]) -> Result<(String, HashMap<String, String>), SoapError> {
    let (_doc, op) = body(bytes)?;
    let params = op.get_child_elements().into_iter().map(|p| (p.get_name(), p.get_content())).collect();
    Ok((op.get_name(), params))
}

/// An `SII:RESPUESTA`: header and body fields by local name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Respuesta {
    pub hdr: HashMap<String, String>,
    pub body: HashMap<String, String>,
}

impl Respuesta {
    /// `ESTADO`, compared as text: "00" is success, and it is not the number 0.
    pub fn estado(&self) -> &str {
        self.hdr.get("ESTADO").map(String::as_str).unwrap_or("")
    }
    pub fn glosa(&self) -> &str {
        self.hdr.get("GLOSA").map(String::as_str).unwrap_or("")
    }
}

fn fields(n: Option<libxml::tree::Node>) -> HashMap<String, String> {
    n.map(|n| n.get_child_elements().into_iter().map(|c| (c.get_name(), c.get_content().trim().to_string())).collect())
        .unwrap_or_default()
}

pub fn parse_respuesta(xml: &str) -> Result<Respuesta, SoapError> {
    // Clients strip the UTF-8 declaration before parsing (FE does): it may not match the bytes.
    let xml = match (xml.trim_start().starts_with("<?xml"), xml.find("?>")) {
        (true, Some(i)) => &xml[i + 2..],
        _ => xml,
    };
    let doc = crate::xml::input::parse_text(xml.trim()).map_err(|e| SoapError::Malformed(e.to_string()))?;
    let root = doc.get_root_element().ok_or_else(|| SoapError::Malformed("empty RESPUESTA".into()))?;
    if root.get_name() != "RESPUESTA" {
        return Err(SoapError::Malformed(format!("expected RESPUESTA, got {}", root.get_name())));
    }
    Ok(Respuesta { hdr: fields(lx::child(&root, "RESP_HDR")), body: fields(lx::child(&root, "RESP_BODY")) })
}

/// For the simulator: an `SII:RESPUESTA` document.
pub fn respuesta(hdr: &[(&str, &str)], body: &[(&str, &str)]) -> String {
    let part = |items: &[(&str, &str)]| {
        items.iter().map(|(k, v)| format!("<{k}>{}</{k}>", escape_text(v))).collect::<String>()
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SII:RESPUESTA xmlns:SII=\"http://www.sii.cl/XMLSchema\"><SII:RESP_HDR>{}</SII:RESP_HDR><SII:RESP_BODY>{}</SII:RESP_BODY></SII:RESPUESTA>",
        part(hdr),
        part(body)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ns = "https://maullin.sii.cl/DTEWS/CrSeed.jws";
        let (op, params) =
            parse_request(request(ns, "getToken", &[("pszXml", "<getToken>&</getToken>")]).as_bytes()).unwrap();
        assert_eq!((op.as_str(), params["pszXml"].as_str()), ("getToken", "<getToken>&</getToken>"));
        let inner = respuesta(&[("ESTADO", "00")], &[("SEMILLA", "000012345678")]);
        let ret = parse_return(response(ns, "getSeed", &inner).as_bytes(), "getSeed").unwrap();
        let r = parse_respuesta(&ret).unwrap();
        assert_eq!((r.estado(), r.body["SEMILLA"].as_str()), ("00", "000012345678"));
        assert_eq!(parse_return(fault("boom").as_bytes(), "getSeed"), Err(SoapError::Fault("boom".into())));
        assert!(parse_return(b"<html>oops</html>", "getSeed").is_err());
    }
}
