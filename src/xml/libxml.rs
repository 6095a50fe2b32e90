//! The few libxml2 services the gateway needs (parsing is in `input`): in-context Canonical XML 1.0 of one
//! element, and tree navigation by local name. libxml2 documents are not `Send`; everything here
//! runs on the calling thread.

use std::ffi::c_void;
use std::os::raw::{c_char, c_int};
use std::sync::Once;

use libxml::bindings as b;
use libxml::tree::{Document, Node, NodeType};

use super::writer::{escape_attr, escape_text};

static INIT: Once = Once::new();

/// libxml2 must be initialised once, before threads use it.
pub fn init() {
    INIT.call_once(|| unsafe { b::xmlInitParser() });
}

unsafe extern "C" fn collect(ctx: *mut c_void, buf: *const c_char, len: c_int) -> c_int {
    if ctx.is_null() || buf.is_null() || len < 0 {
        return -1;
    }
    let out = unsafe { &mut *(ctx as *mut Vec<u8>) };
    out.extend_from_slice(unsafe { std::slice::from_raw_parts(buf as *const u8, len as usize) });
    len
}

unsafe extern "C" fn close(_ctx: *mut c_void) -> c_int {
    0
}

struct Subset {
    apex: b::xmlNodePtr,
    /// A subtree left out (an enveloped Signature inside the signed element).
    exclude: b::xmlNodePtr,
}

/// A node is in the subset when it is the apex or below it, and not in the excluded subtree;
/// attributes and namespace nodes go with their parent element. (xmlNs and xmlNode share the
/// position of `type`, which is how libxml2 itself tells them apart.)
unsafe extern "C" fn visible(subset: *mut c_void, node: b::xmlNodePtr, parent: b::xmlNodePtr) -> c_int {
    let subset = unsafe { &*(subset as *const Subset) };
    let ty = if node.is_null() { 0 } else { unsafe { (*node).type_ } };
    let mut cur = if ty == b::xmlElementType_XML_NAMESPACE_DECL || ty == b::xmlElementType_XML_ATTRIBUTE_NODE {
        parent
    } else {
        node
    };
    while !cur.is_null() {
        if cur == subset.exclude {
            return 0;
        }
        if cur == subset.apex {
            return 1;
        }
        cur = unsafe { (*cur).parent };
    }
    0
}

/// Inclusive Canonical XML 1.0 (no comments) of `node` in its document context: namespaces in
/// scope are rendered on the apex, as an XMLDSig verifier computes a same-document reference.
/// Output is UTF-8.
pub fn c14n(doc: &Document, node: &Node) -> Result<Vec<u8>, String> {
    c14n_excluding(doc, node, None)
}

/// [`c14n`] with one subtree left out (the enveloped-signature transform).
pub fn c14n_excluding(doc: &Document, node: &Node, exclude: Option<&Node>) -> Result<Vec<u8>, String> {
    let mut out: Vec<u8> = Vec::with_capacity(8192);
    let subset = Subset { apex: node.node_ptr(), exclude: exclude.map_or(std::ptr::null_mut(), |n| n.node_ptr()) };
    let status = unsafe {
        let buf = b::xmlOutputBufferCreateIO(
            Some(collect),
            Some(close),
            &mut out as *mut Vec<u8> as *mut c_void,
            std::ptr::null_mut(),
        );
        if buf.is_null() {
            return Err("libxml2 could not allocate an output buffer".into());
        }
        let st = b::xmlC14NExecute(
            doc.doc_ptr(),
            Some(visible),
            &subset as *const Subset as *mut c_void,
            b::xmlC14NMode_XML_C14N_1_0 as c_int,
            std::ptr::null_mut(),
            0,
            buf,
        );
        b::xmlOutputBufferClose(buf);
        st
    };
    if status < 0 {
        return Err("canonicalisation failed".into());
    }
    Ok(out)
}

pub fn is_element(n: &Node) -> bool {
    n.get_type() == Some(NodeType::ElementNode)
}

/// The namespace URI of an element ("" when none).
pub fn ns_of(n: &Node) -> String {
    n.get_namespace().map(|ns| ns.get_href()).unwrap_or_default()
}

pub fn child(n: &Node, name: &str) -> Option<Node> {
    n.get_child_elements().into_iter().find(|c| c.get_name() == name)
}

/// A DTE's content element: `Documento`, `Liquidacion` (43) or `Exportaciones` (110-112).
pub fn dte_content(dte: &Node) -> Option<Node> {
    dte.get_child_elements()
        .into_iter()
        .find(|c| matches!(c.get_name().as_str(), "Documento" | "Liquidacion" | "Exportaciones"))
}

/// [`path`] from a DTE's content element, whichever it is.
pub fn dte_path(dte: &Node, names: &[&str]) -> Option<Node> {
    path(&dte_content(dte)?, names)
}

pub fn child_text(n: &Node, name: &str) -> Option<String> {
    child(n, name).map(|c| c.get_content())
}

/// Follows a path of local names.
pub fn path(n: &Node, names: &[&str]) -> Option<Node> {
    let mut cur = n.clone();
    for name in names {
        cur = child(&cur, name)?;
    }
    Some(cur)
}

/// Every descendant element (document order) with this local name.
pub fn descendants(n: &Node, name: &str, out: &mut Vec<Node>) {
    for c in n.get_child_elements() {
        if c.get_name() == name {
            out.push(c.clone());
        }
        descendants(&c, name, out);
    }
}

/// How the SII flattens an element for the TED and CAF signatures: the markup with local names,
/// whitespace-only text between tags removed, text escaped. `apos_quot` also escapes `'` and `"`
/// in text, as some issuers do; verifiers try both.
pub fn flatten(n: &Node, apos_quot: bool) -> String {
    let mut s = String::with_capacity(1024);
    flatten_into(n, apos_quot, &mut s);
    s
}

fn flatten_into(n: &Node, aq: bool, s: &mut String) {
    let name = n.get_name();
    s.push('<');
    s.push_str(&name);
    let mut attrs: Vec<(String, String)> = n.get_attributes().into_iter().collect();
    attrs.sort();
    for (k, v) in attrs {
        s.push(' ');
        s.push_str(&k);
        s.push_str("=\"");
        s.push_str(&escape_attr(&v));
        s.push('"');
    }
    s.push('>');
    let mut c = n.get_first_child();
    while let Some(node) = c {
        match node.get_type() {
            Some(NodeType::ElementNode) => flatten_into(&node, aq, s),
            Some(NodeType::TextNode) | Some(NodeType::CDataSectionNode) => {
                let t = node.get_content();
                if !t.trim().is_empty() {
                    let e = escape_text(&t);
                    if aq {
                        s.push_str(&e.replace('\'', "&apos;").replace('"', "&quot;"));
                    } else {
                        s.push_str(&e);
                    }
                }
            }
            _ => {}
        }
        c = node.get_next_sibling();
    }
    s.push_str("</");
    s.push_str(&name);
    s.push('>');
}
