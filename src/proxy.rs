//! Which address a request comes from, behind a reverse proxy.
//!
//! Behind nginx or Caddy every connection comes from the proxy, so per-address
//! rate limits would lump all clients together and logs would show only the
//! proxy. The proxy reports the client in `X-Forwarded-For`, but anyone can
//! send that header, so it is believed only from the addresses listed in
//! `trusted_proxies`. The header is read from the right: each proxy appends
//! the address it saw, so the rightmost entry that is not itself a trusted
//! proxy is the client (entries further left were written by the client and
//! prove nothing).

use std::net::IpAddr;

use hyper::HeaderMap;

/// The client address of a request that arrived from `peer`.
pub fn client_ip(trusted: &[IpAddr], peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    // Several headers count as one list, in order.
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            // Garbage: stop at the last address we could trust.
            break;
        };
        client = ip;
        if !trusted.contains(&ip) {
            break;
        }
    }
    client
}

/// An entry is an IP address, possibly with a port (`1.2.3.4:5678`,
/// `[::1]:5678`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_counts_only_from_trusted_proxies() {
        let trusted = [ip("127.0.0.1")];
        let h = headers(&["203.0.113.7"]);
        assert_eq!(client_ip(&trusted, ip("127.0.0.1"), &h), ip("203.0.113.7"));
        assert_eq!(
            client_ip(&trusted, ip("198.51.100.1"), &h),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(&[], ip("127.0.0.1"), &h), ip("127.0.0.1"));
        assert_eq!(
            client_ip(&trusted, ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn spoofed_entries_on_the_left_are_ignored() {
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        // The client claimed 1.1.1.1; the outer proxy saw 203.0.113.7; the inner one saw the outer one.
        let h = headers(&["1.1.1.1, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(client_ip(&trusted, ip("127.0.0.1"), &h), ip("203.0.113.7"));
        let h = headers(&["203.0.113.7:4711, garbage"]);
        assert_eq!(client_ip(&trusted, ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let h = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_ip(&trusted, ip("::ffff:127.0.0.1"), &h),
            ip("2001:db8::1")
        );
    }
}
