//! Header rules of a proxy: hop-by-hop removal (RFC 9110 §7.6.1) and the `X-Forwarded-*` family.

use std::net::IpAddr;

use floodgate_http1::{named_by_connection, HopByHop};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Version};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");
/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the headers that describe one connection rather than the message: `Connection` and every header
/// it names, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, `HTTP2-Settings` and `TE`
/// (except `TE: trailers`, which gRPC requires end to end over HTTP/2).
///
/// `keep_upgrade` keeps `Connection: upgrade` and `Upgrade` for a tunnelled upgrade request or a 101 answer.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let found = scan(headers).hop_by_hop;
    remove_found(headers, found, keep_upgrade);
}

/// Prepares a client's request fields for the upstream: removes the hop-by-hop fields as
/// [`remove_hop_by_hop`] does, and every field spelled as one of [`GATEWAY_FIELDS`] with `_` for `-`.
/// `found` is [`scan`] of these same fields.
pub fn clean_request_fields(headers: &mut HeaderMap, found: Scan, keep_upgrade: bool) {
    remove_found(headers, found.hop_by_hop, keep_upgrade);
    if found.underscore {
        floodgate_http1::remove_twins(headers, &GATEWAY_FIELDS);
    }
}

/// What one pass over a message's field names found.
pub struct Scan {
    hop_by_hop: HopByHop,
    /// Whether a name starting with `x` has a `_` (so may be an underscore twin of a gateway field).
    underscore: bool,
    /// Whether the message has an `X-Forwarded-For` field.
    pub forwarded_for: bool,
    /// Whether the message has an `Expect` field.
    pub expect: bool,
}

impl Scan {
    /// Whether the message has an `Upgrade` field.
    pub fn upgrade(&self) -> bool {
        self.hop_by_hop.upgrade
    }
}

/// One pass over the names, noting which are there: most messages carry none of the hop-by-hop
/// fields, or only `Connection: keep-alive`, and a lookup per name would cost more than the scan.
pub fn scan(headers: &HeaderMap) -> Scan {
    let mut found = Scan {
        hop_by_hop: HopByHop::default(),
        underscore: false,
        forwarded_for: false,
        expect: false,
    };
    for name in headers.keys() {
        let name = name.as_str().as_bytes();
        found.hop_by_hop.note(name);
        // Every gateway field starts with `x`; most names do not, and skip the search.
        if name.first() == Some(&b'x') {
            found.underscore |= name.contains(&b'_');
            found.forwarded_for |= name == X_FORWARDED_FOR.as_str().as_bytes();
        }
        // Noted here so a request without them costs no lookup for them later (a lookup hashes).
        found.expect |= name == b"expect";
    }
    found
}

fn remove_found(headers: &mut HeaderMap, found: HopByHop, keep_upgrade: bool) {
    if found.connection {
        let names_others = headers.get_all(header::CONNECTION).iter().any(|value| {
            named_by_connection(value.as_bytes(), keep_upgrade)
                .next()
                .is_some()
        });
        if names_others {
            // Clones of the values (reference counts) let the names they list be removed from the map.
            let all: Vec<HeaderValue> = headers
                .get_all(header::CONNECTION)
                .iter()
                .cloned()
                .collect();
            for connection in &all {
                remove_named(headers, connection, keep_upgrade);
            }
        }
        headers.remove(header::CONNECTION);
    }
    if found.keep_alive {
        headers.remove(&KEEP_ALIVE);
    }
    if found.proxy_connection {
        headers.remove(&PROXY_CONNECTION);
    }
    if found.http2_settings {
        headers.remove(&HTTP2_SETTINGS);
    }
    if found.transfer_encoding {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if found.te {
        let trailers_only = headers
            .get(header::TE)
            .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
        if !trailers_only {
            headers.remove(header::TE);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if found.upgrade {
        headers.remove(header::UPGRADE);
    }
}

/// Removes the headers a `Connection` value names (RFC 9110 §7.6.1), looked up by text so no name is
/// allocated.
fn remove_named(headers: &mut HeaderMap, connection: &HeaderValue, keep_upgrade: bool) {
    for token in named_by_connection(connection.as_bytes(), keep_upgrade) {
        if let Ok(name) = std::str::from_utf8(token) {
            headers.remove(name);
        }
    }
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto` and `X-Forwarded-Host`.
///
/// `client` is the client's address as a header value, made once per connection with [`ip_value`].
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    tls: bool,
    host: Option<&HeaderValue>,
) {
    let ip = client.as_bytes();
    let mut prior = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter(|v| !v.is_empty())
        .peekable();
    let value = if prior.peek().is_none() {
        Some(client.clone())
    } else {
        let mut joined = Vec::with_capacity(64);
        for v in prior {
            joined.extend_from_slice(v.as_bytes());
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(ip);
        HeaderValue::from_bytes(&joined).ok()
    };
    // Several X-Forwarded-For lines from the client are folded into the one we write.
    if let Some(value) = value {
        headers.insert(&X_FORWARDED_FOR, value);
    }
    headers.insert(
        &X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    if let Some(host) = host {
        headers.insert(&X_FORWARDED_HOST, host.clone());
    }
}

/// The fields the gateway writes itself ([`Forwarded`]). A client's field whose name differs from one
/// of these only by `_` for `-` (`X_Forwarded_For`) is removed, since an upstream that reads names as
/// `HTTP_*` variables could take it for the gateway's ([`floodgate_http1::remove_twins`]).
pub static GATEWAY_FIELDS: [&HeaderName; 4] = [
    &X_FORWARDED_FOR,
    &X_FORWARDED_PROTO,
    &X_FORWARDED_HOST,
    &crate::request_id::X_REQUEST_ID,
];

/// What the gateway tells an upstream about a request: `X-Forwarded-For` (the client appended to any the
/// client sent), `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Request-Id`, each replacing the client's.
///
/// Kept beside the request's map rather than added to it: an HTTP/1.1 upstream gets the lines written
/// straight into its request head ([`Forwarded::encode`], no map insertions or value copies), an HTTP/2
/// upstream gets them in the map just before sending ([`Forwarded::apply`]).
pub struct Forwarded<'a> {
    /// The client's address as a header value.
    pub client: &'a HeaderValue,
    /// Whether the request carries `X-Forwarded-For` lines to keep ([`Scan::forwarded_for`]):
    /// otherwise they are not looked up.
    pub prior: bool,
    /// Whether the client's connection is TLS.
    pub tls: bool,
    /// The host the client asked for.
    pub host: Option<HeaderValue>,
    /// The request's id.
    pub request_id: &'a HeaderValue,
}

impl Forwarded<'_> {
    /// Whether the gateway writes a header of this name itself (the client's value is left out).
    pub fn replaces(name: &HeaderName) -> bool {
        name == X_FORWARDED_FOR
            || name == X_FORWARDED_PROTO
            || name == X_FORWARDED_HOST
            || name == crate::request_id::X_REQUEST_ID
    }

    /// Writes the header lines, taking the client's own `X-Forwarded-For` values from `headers`.
    pub fn encode(&self, out: &mut Vec<u8>, headers: &HeaderMap) {
        out.extend_from_slice(b"x-forwarded-for: ");
        if self.prior {
            for prior in headers.get_all(&X_FORWARDED_FOR) {
                if !prior.is_empty() {
                    out.extend_from_slice(prior.as_bytes());
                    out.extend_from_slice(b", ");
                }
            }
        }
        out.extend_from_slice(self.client.as_bytes());
        out.extend_from_slice(if self.tls {
            b"\r\nx-forwarded-proto: https\r\n"
        } else {
            b"\r\nx-forwarded-proto: http\r\n"
        });
        if let Some(host) = &self.host {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"x-request-id: ");
        out.extend_from_slice(self.request_id.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// Sets the headers in `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        add_forwarded(headers, self.client, self.tls, self.host.as_ref());
        headers.insert(&crate::request_id::X_REQUEST_ID, self.request_id.clone());
    }
}

/// An IP address as a header value (for `X-Forwarded-For`).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    // An IP address's text is always a valid header value.
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Whether an HTTP/1.1 request asks to switch protocols (WebSocket and the like).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && floodgate_http1::connection_has(req.headers(), b"upgrade")
}

/// The `Host` value for the upstream when the route preserves it: the client's host as sent.
pub fn client_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => req.headers().get(header::HOST).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn odd_connection_tokens_do_not_break_removal() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("x y, , close, Keep-Alive, x-gone"),
        );
        h.insert("x-gone", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-also-gone"));
        h.insert("x-also-gone", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn keeps_te_trailers_and_upgrade_when_tunnelling() {
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
    }

    #[test]
    fn forwarded_lines_replace_the_clients_and_match_the_map_form() {
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("gopher"));
        let client = ip_value("127.0.0.1".parse().unwrap());
        let id = HeaderValue::from_static("id-1");
        let found = scan(&h);
        assert!(found.forwarded_for && !found.expect);
        let forwarded = Forwarded {
            client: &client,
            prior: found.forwarded_for,
            tls: false,
            host: Some(HeaderValue::from_static("a.example")),
            request_id: &id,
        };
        let mut out = Vec::new();
        forwarded.encode(&mut out, &h);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: a.example\r\nx-request-id: id-1\r\n"
        );
        assert!(h.keys().all(Forwarded::replaces));
        forwarded.apply(&mut h);
        assert_eq!(
            h.get(&X_FORWARDED_FOR).unwrap(),
            "10.0.0.1, 10.0.0.2, 127.0.0.1"
        );
        assert_eq!(h.get(&X_FORWARDED_PROTO).unwrap(), "http");
        assert_eq!(h.get(&X_FORWARDED_HOST).unwrap(), "a.example");
        assert_eq!(h.get("x-request-id").unwrap(), "id-1");
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn appends_forwarded_for() {
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        add_forwarded(
            &mut h,
            &ip_value("127.0.0.1".parse().unwrap()),
            true,
            Some(&HeaderValue::from_static("a.example")),
        );
        assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(h.get(&X_FORWARDED_PROTO).unwrap(), "https");
        assert_eq!(h.get(&X_FORWARDED_HOST).unwrap(), "a.example");
    }
}
