//! Exchange mail: the XML files a supplier's message carries, and the messages the receiver's
//! answers leave in. Parsing and building only; the mailbox worker does the talking.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use mail_parser::{MessageParser, MimeHeaders};

/// What the gateway keeps of a received message.
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    /// `Message-ID`, or a digest of the message when it has none.
    pub message_id: String,
    /// SHA-256 of the whole message.
    pub digest: String,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub subject: Option<String>,
    /// `(file name, bytes)` of every XML part.
    pub xml: Vec<(String, Vec<u8>)>,
}

fn is_xml(name: Option<&str>, ctype: Option<(&str, Option<&str>)>) -> bool {
    name.is_some_and(|n| n.to_ascii_lowercase().ends_with(".xml"))
        || ctype.is_some_and(|(t, s)| {
            let s = s.unwrap_or("").to_ascii_lowercase();
            matches!(t.to_ascii_lowercase().as_str(), "application" | "text") && (s == "xml" || s.ends_with("+xml"))
        })
}

/// Reads a raw RFC 5322 message. `None` when it is not a mail message at all.
pub fn read(raw: &[u8]) -> Option<Incoming> {
    let msg = MessageParser::default().parse(raw)?;
    let digest = crate::crypto::sha256_hex(raw);
    let addr =
        |a: Option<&mail_parser::Address>| a.and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_string);
    let mut xml = Vec::new();
    for (i, part) in msg.attachments().enumerate() {
        let name = part.attachment_name();
        let ctype = part.content_type().map(|c| (c.ctype(), c.subtype()));
        if is_xml(name, ctype) {
            xml.push((
                name.map(str::to_string).unwrap_or_else(|| format!("adjunto-{}.xml", i + 1)),
                part.contents().to_vec(),
            ));
        }
    }
    Some(Incoming {
        message_id: msg
            .message_id()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("sha256:{digest}")),
        digest,
        from: addr(msg.from()),
        reply_to: addr(msg.reply_to()),
        subject: msg.subject().map(str::to_string),
        xml,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad address {0:?}: {1}")]
    Address(String, String),
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// A message with one XML attachment (an answer to a supplier).
pub fn with_xml(
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    filename: &str,
    xml: Vec<u8>,
) -> Result<lettre::Message, MailError> {
    with_files(from, to, subject, body, vec![(filename.to_string(), "application/xml", xml)])
}

/// A message with files attached: `(name, media type, bytes)` (a buyer's EnvioDTE and its PDFs).
pub fn with_files(
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    files: Vec<(String, &str, Vec<u8>)>,
) -> Result<lettre::Message, MailError> {
    let mbox = |s: &str| s.parse::<Mailbox>().map_err(|e| MailError::Address(s.to_string(), e.to_string()));
    let sender = mbox(from)?;
    // The receiver takes each message once by its Message-ID: every message carries its own.
    let mut r = [0u8; 16];
    openssl::rand::rand_bytes(&mut r).map_err(|e| MailError::Build(e.to_string()))?;
    let id = format!("<{}@{}>", crate::crypto::hex(&r), sender.email.domain());
    let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body.to_string()));
    for (name, media, bytes) in files {
        let ct = ContentType::parse(media).map_err(|e| MailError::Build(e.to_string()))?;
        parts = parts.singlepart(Attachment::new(name).body(bytes, ct));
    }
    lettre::Message::builder()
        .message_id(Some(id))
        .from(sender)
        .to(mbox(to)?)
        .subject(subject)
        .multipart(parts)
        .map_err(|e| MailError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xml_attachment_of_a_built_message_reads_back() {
        let xml = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<EnvioDTE>\xe1</EnvioDTE>".to_vec();
        let m = with_xml("a@example.test", "b@example.test", "DTE", "adjunto", "envio.xml", xml.clone()).unwrap();
        let raw = m.formatted();
        let r = read(&raw).unwrap();
        assert_eq!(r.xml, vec![("envio.xml".to_string(), xml)]);
        assert_eq!(r.from.as_deref(), Some("a@example.test"));
        assert!(!r.message_id.is_empty());
        let plain = read(b"From: x@example.test\r\nSubject: hola\r\n\r\nsin adjuntos\r\n").unwrap();
        assert!(plain.xml.is_empty());
        assert!(plain.message_id.starts_with("sha256:"));
    }
}
