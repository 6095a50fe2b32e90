//! XML: rendering (quick-xml, canonical form), ISO-8859-1, C14N, TED, XMLDSig and schema validation.
//! `render`, `latin1`, `ted` and the signing half of `dsig` are pure; `input` is the one door for
//! untrusted XML; `libxml` wraps libxml2 for C14N and navigation, `schema` for XSD (its documents are not `Send`: they live and die on one thread).

pub mod dsig;
pub mod input;
pub mod latin1;
pub mod libxml;
pub mod render;
pub mod schema;
pub mod writer;

pub const NS_SII: &str = "http://www.sii.cl/SiiDte";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
