//! Where the gateway may connect on a tenant's behalf (webhook receivers). A tenant chooses the URL,
//! so without a guard it could make the gateway reach its own loopback, the private network or a
//! cloud metadata address and read the outcome back. Pure: the resolver that applies
//! [`TargetPolicy::allows`] at connect time lives with the webhook worker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Plain `http://` receivers (off: secrets and documents' states travel in the body).
    pub allow_http: bool,
    /// Loopback, private, link-local and unique-local addresses, for on-premise receivers.
    pub allow_private: bool,
}

fn v4_internal(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        // 0.0.0.0/8 ("this network"), 100.64.0.0/10 (carrier-grade NAT), 192.0.0.0/24 (IETF),
        // 198.18.0.0/15 (benchmarking), 240.0.0.0/4 (reserved).
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xC0) == 64)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xFE) == 18)
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast
        || o[0] >= 240
}

fn v6_internal(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_internal(v4);
    }
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xFE00) == 0xFC00 // unique local fc00::/7
        || (s[0] & 0xFFC0) == 0xFE80 // link-local fe80::/10
        || (s[0] & 0xFFC0) == 0xFEC0 // site-local (deprecated) fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 can reach any IPv4 address
        || (s[0] == 0x2001 && s[1] == 0) // Teredo tunnels to an address the prefix hides
        || (s[0] == 0x2002 && v4_internal(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8))) // 6to4 of an internal IPv4
        || (s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
        || (s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0) // IPv4-translated ::ffff:0:a.b.c.d
}

/// Loopback, private, link-local, multicast, unspecified or reserved: not a public receiver.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_internal(v4),
        IpAddr::V6(v6) => v6_internal(v6),
    }
}

impl TargetPolicy {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || !is_internal(ip)
    }

    /// Checks a receiver URL as given by a tenant: scheme, no credentials, a host, and (when the
    /// host is an address) an allowed address. Names are checked again each time they resolve.
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        if raw.len() > 2000 {
            return Err("the URL is longer than 2000 characters".into());
        }
        let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("the URL must be https (plain http is off in this gateway)".into()),
            other => return Err(format!("the URL scheme {other} is not http(s)")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the URL must not carry credentials".into());
        }
        if let Some(ip) = literal_ip(&url) {
            if !self.allows(ip) {
                return Err(format!("{ip} is not a public address"));
            }
        } else if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        Ok(url)
    }
}

/// The address in a URL whose host is an IP literal (a resolver is never asked about those).
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    // The URL parser has already normalised forms such as `0x7f000001` to dotted quads.
    let host = url.host_str()?;
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:0:4136:e378::1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "::ffff:0:7f00:1",
            "192.88.99.1",
        ] {
            assert!(is_internal(a.parse().unwrap()), "{a}");
        }
        for a in ["200.10.20.30", "8.8.8.8", "2800:150::1", "::ffff:200.1.2.3", "2002:c80a:141e::1"] {
            assert!(!is_internal(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn urls() {
        let strict = TargetPolicy::default();
        assert!(strict.check_url("https://erp.example.cl/hooks").is_ok());
        assert!(strict.check_url("http://erp.example.cl/hooks").unwrap_err().contains("https"));
        assert!(strict.check_url("https://127.0.0.1:8080/x").unwrap_err().contains("public"));
        assert!(strict.check_url("https://[::1]/x").unwrap_err().contains("public"));
        assert!(strict.check_url("https://0x7f000001/x").unwrap_err().contains("public"));
        assert!(strict.check_url("https://user:pw@erp.example.cl/").unwrap_err().contains("credentials"));
        assert!(strict.check_url("ftp://erp.example.cl/").is_err());
        assert!(strict.check_url("file:///etc/passwd").is_err());
        let onprem = TargetPolicy { allow_http: true, allow_private: true };
        assert!(onprem.check_url("http://127.0.0.1:8080/x").is_ok());
    }
}
