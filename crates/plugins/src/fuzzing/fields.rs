//! Properties of the request fields plugins read: client addresses behind proxies, query parameters,
//! the places a token is carried, path parameters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::cidr::CidrSet;
use crate::params::ParamPatterns;
use crate::plugins::jwt_auth::token::TokenSources;
use crate::query::{ParamName, Separators};
use crate::real_ip::RealIp;

/// The proxies `forwarded_for` trusts.
const TRUSTED: [&str; 3] = ["10.0.0.0/8", "127.0.0.1", "fd00::/8"];

/// The peers `forwarded_for` picks from, by the input's first byte: trusted ones (one IPv4-mapped)
/// and untrusted ones.
const PEERS: [&str; 6] = [
    "10.0.0.2",
    "127.0.0.1",
    "fd00::5",
    "::ffff:10.0.0.3",
    "203.0.113.9",
    "2001:db8::9",
];

/// `X-Forwarded-For` behind trusted proxies: the first input byte picks the peer, the rest are field
/// lines (one per `\n`). An untrusted peer is the client whatever the field says; behind a trusted
/// peer the client is what an independent right-to-left walk of the list finds: the right-most
/// untrusted address, the last trusted hop when junk stands to its right, the left-most address when
/// all are trusted.
pub fn forwarded_for(data: &[u8]) {
    let Some((&pick, lines)) = data.split_first() else {
        return;
    };
    let peer: IpAddr = PEERS[usize::from(pick) % PEERS.len()]
        .parse()
        .expect("a listed peer");
    let name = HeaderName::from_static("x-forwarded-for");
    let mut headers = HeaderMap::new();
    if !lines.is_empty() {
        for line in lines.split(|&b| b == b'\n') {
            let Ok(value) = HeaderValue::from_bytes(line) else {
                return;
            };
            headers.append(name.clone(), value);
        }
    }
    let real_ip = RealIp::new(
        CidrSet::parse(TRUSTED).expect("the trusted networks"),
        name.clone(),
    );
    let got = real_ip.client(peer, &headers);

    let networks: Vec<IpNet> = TRUSTED
        .iter()
        .map(|n| match n.parse() {
            Ok(net) => net,
            Err(_) => IpNet::from(n.parse::<IpAddr>().expect("an address")),
        })
        .collect();
    let trusted = |ip: IpAddr| networks.iter().any(|n| n.contains(&unmapped(ip)));
    let items: Vec<&[u8]> = headers
        .get_all(&name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .collect();
    let mut want = unmapped(peer);
    if trusted(want) {
        for item in items.iter().rev() {
            let Some(ip) = reference_item(item) else {
                break;
            };
            want = ip;
            if !trusted(ip) {
                break;
            }
        }
    }
    assert_eq!(got, want, "the client of {peer} with {headers:?}");
}

/// One list item of `X-Forwarded-For`, read as RFC 7239 §6 node names are: an IPv4 address or an IPv6
/// address, alone or with a port (`a.b.c.d:p`, `[x::y]:p`), with optional whitespace around.
fn reference_item(item: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(item).ok()?.trim_matches([' ', '\t']);
    let port_ok = |port: &str| {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
    };
    let ip = if let Some(rest) = text.strip_prefix('[') {
        let (inside, port) = rest.split_once("]:")?;
        if !port_ok(port) {
            return None;
        }
        // A numeric zone (`[fe80::1%2]:p`) is read as std reads socket addresses, and dropped: it
        // names an interface of the proxy that wrote it, not part of the address.
        let inside = match inside.split_once('%') {
            Some((address, zone)) if zone.bytes().all(|b| b.is_ascii_digit()) => {
                zone.parse::<u32>().ok()?;
                address
            }
            Some(_) => return None,
            None => inside,
        };
        IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if !port_ok(port) {
            return None;
        }
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    Some(unmapped(ip))
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parameter names `query_param` and `token_sources` look for, picked by the input's first byte.
const NAMES: [&str; 4] = ["apikey", "access_token", "a", "jwt"];

/// The separators a query is split on, picked by bit 6 of the input's first byte.
fn separators(pick: u8) -> Separators {
    if pick & 0x40 == 0 {
        Separators::Ampersand
    } else {
        Separators::AmpersandAndSemicolon
    }
}

/// A query's parameters, each with the separator before it (`None` for the first), split on `&` and,
/// when `semicolons`, on `;`.
fn reference_pairs(query: &str, semicolons: bool) -> Vec<(Option<char>, &str)> {
    let mut pairs = Vec::new();
    let mut before = None;
    let mut start = 0;
    for (at, c) in query.char_indices() {
        if c == '&' || (semicolons && c == ';') {
            pairs.push((before, &query[start..at]));
            before = Some(c);
            start = at + 1;
        }
    }
    pairs.push((before, &query[start..]));
    pairs
}

/// Whether an upstream reads the raw parameter or cookie name `raw` as `name`: both read as PHP's
/// `php_register_variable_ex` reads a name (`raw` form-decoded first; the name ends at a NUL,
/// leading spaces go, ` ` and `.` are `_`; from a first `[` with a `]` somewhere after it on the
/// name is cut there, otherwise that `[` and any later ` `, `.` or `[` are `_`), compared
/// ASCII-case-insensitively as ASP.NET Core compares names.
fn reads_as(raw: &str, name: &str) -> bool {
    fn php(bytes: &[u8]) -> Vec<u8> {
        let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
        let first = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
        let mut bytes = &bytes[first..];
        if let Some(open) = bytes.iter().position(|&b| b == b'[') {
            if bytes[open..].contains(&b']') {
                bytes = &bytes[..open];
            }
        }
        bytes
            .iter()
            .map(|&b| {
                if matches!(b, b' ' | b'.' | b'[') {
                    b'_'
                } else {
                    b
                }
            })
            .map(|b| b.to_ascii_lowercase())
            .collect()
    }
    let want = php(name.as_bytes());
    !want.is_empty() && php(&form_decoded(raw)) == want
}

/// A query parameter (`?apikey=`, `?access_token=`): the first input byte picks the name and the
/// separators, the rest is the query. A value found is the text after `=` of the first pair whose
/// name an upstream reads as the name ([`reads_as`]); removing the parameter removes every such pair
/// and keeps the others in order with the separator before each; it changes something exactly when a
/// value is found; a valid request target stays valid once it is removed (otherwise a credential would
/// reach the upstream).
pub fn query_param(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let semicolons = separators(pick) == Separators::AmpersandAndSemicolon;
    let param = ParamName::new(name, separators(pick));
    let Ok(query) = std::str::from_utf8(rest) else {
        return;
    };
    let key = |pair: &str| pair.split('=').next().unwrap_or_default().to_string();
    let want = reference_pairs(query, semicolons)
        .into_iter()
        .find(|(_, p)| reads_as(&key(p), name))
        .map(|(_, p)| p.split_once('=').map_or("", |(_, value)| value));
    assert_eq!(param.param(Some(query)), want, "the value in {query:?}");

    // Removal works on a request's target, which never holds a fragment.
    let Ok(target) = PathAndQuery::try_from(format!("/p?{query}")) else {
        return;
    };
    let query = target.query().unwrap_or("");
    let found = param.param(Some(query));
    let removed = param.without(target.as_str());
    assert_eq!(
        removed.is_some(),
        found.is_some(),
        "removing from {target:?}"
    );
    let Some(removed) = removed else {
        return;
    };
    let mut expected = "/p".to_string();
    for (before, pair) in reference_pairs(query, semicolons) {
        if reads_as(&key(pair), name) {
            continue;
        }
        match (expected.contains('?'), before) {
            (false, _) => expected.push('?'),
            (true, Some(separator)) => expected.push(separator),
            (true, None) => unreachable!("only the first pair has no separator before it"),
        }
        expected.push_str(pair);
    }
    assert_eq!(removed, expected, "removing {name} from {target:?}");
    let path = PathAndQuery::try_from(removed.as_str()).expect("a valid target stays valid");
    assert_eq!(param.param(path.query()), None, "{name} is gone");
    for (_, pair) in reference_pairs(path.query().unwrap_or(""), semicolons) {
        assert!(
            !reads_as(&key(pair), name),
            "{pair:?} is left in {removed:?}"
        );
    }
}

/// A parameter name as a form decoder reads it: `+` is a space, `%` and two hex digits the byte they
/// spell, anything else itself.
fn form_decoded(raw: &str) -> Vec<u8> {
    let raw = raw.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        let escape = raw
            .get(at + 1..at + 3)
            .filter(|digits| digits.iter().all(u8::is_ascii_hexdigit))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 16).ok());
        match (raw[at], escape) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                at += 1;
            }
            (other, _) => {
                decoded.push(other);
                at += 1;
            }
        }
    }
    decoded
}

/// `jwt-auth`'s token sources: the first input byte picks the cookie and query parameter names, the
/// query's separators and whether the token header is `Authorization` or `X-Token`; the rest is
/// field lines (`name: value`, one per `\n`) and a last line that is the query. A token found is
/// non-empty and is, trimmed, part of the field, a cookie's value or the query; once hidden (the
/// field and cookie removed as the plugin removes them, the parameter as the upstream request drops
/// it) no token is found any more, no cookie or parameter an upstream reads as the token's is left,
/// and every other field is kept but the header's spellings with `_` and `-` swapped.
pub fn token_sources(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let cookie_name = NAMES[usize::from(pick) % NAMES.len()];
    let query_name = NAMES[usize::from(pick >> 2) % NAMES.len()];
    let sources = TokenSources::new(
        Some(if pick & 0x80 == 0 {
            header::AUTHORIZATION
        } else {
            HeaderName::from_static("x-token")
        }),
        Some(cookie_name),
        Some(query_name),
        separators(pick),
    );
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (fields, query) = text.rsplit_once('\n').unwrap_or(("", text));
    let mut headers = HeaderMap::new();
    for line in fields.split('\n').filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.trim_matches([' ', '\t'])),
        ) else {
            return;
        };
        headers.append(name, value);
    }
    // A target whose query the request line could carry.
    let Ok(target) = PathAndQuery::try_from(format!("/p?{query}")) else {
        return;
    };

    if let Ok(Some(token)) = sources.find(&headers, target.query()) {
        assert!(!token.is_empty(), "an empty token");
        let inside = |whole: &[u8]| whole.windows(token.len()).any(|w| w == token);
        assert!(
            headers.iter().any(|(_, v)| inside(v.as_bytes()))
                || target.query().is_some_and(|q| inside(q.as_bytes())),
            "{token:?} comes from the request"
        );
    }

    let mut hidden = headers.clone();
    sources.hide(&mut hidden);
    let name = sources.query.as_ref().expect("a parameter name");
    let target = match name.without(target.as_str()) {
        Some(path) => PathAndQuery::try_from(path).expect("a valid target stays valid"),
        None => target,
    };
    assert_eq!(
        sources.find(&hidden, target.query()),
        Ok(None),
        "a token is left in {hidden:?} {target:?}"
    );
    let semicolons = separators(pick) == Separators::AmpersandAndSemicolon;
    for (_, pair) in reference_pairs(target.query().unwrap_or(""), semicolons) {
        let key = pair.split('=').next().unwrap_or_default();
        assert!(!reads_as(key, query_name), "{pair:?} is left in {target:?}");
    }
    for cookie in hidden
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for pair in cookie.split(';') {
            let key = pair.split('=').next().unwrap_or_default();
            assert!(
                !reads_as(key.trim(), cookie_name),
                "{pair:?} is left in {cookie:?}"
            );
        }
    }
    // The header's spellings: the same name once every `_` is read as `-`, on both sides.
    let dashed = |name: &str| name.replace('_', "-");
    let source_header = sources.header.as_ref().map(|h| dashed(h.as_str()));
    for (name, value) in headers.iter() {
        let spells_source = source_header
            .as_deref()
            .is_some_and(|source| dashed(name.as_str()) == source);
        if name != header::COOKIE && !spells_source {
            assert!(
                hidden.get_all(name).iter().any(|v| v == value),
                "{name} is kept"
            );
        }
    }
}

/// The route patterns `path_params` matches against.
const PATTERNS: [&str; 4] = [
    "/users/{id}",
    "/users/{id}/posts/{post}",
    "/a/{x}/b",
    "/static/file",
];

/// Path parameters: the input is a request path. Values are never empty and never hold a `/`, and
/// put back into the pattern they came from they give the path again.
pub fn path_params(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    static PARAMS: OnceLock<ParamPatterns> = OnceLock::new();
    let params = PARAMS.get_or_init(|| ParamPatterns::new(PATTERNS));
    let found = params.extract(path);
    if found.is_empty() {
        return;
    }
    let rebuilt = PATTERNS.iter().find_map(|pattern| {
        let mut out = String::new();
        for segment in pattern.split('/').skip(1) {
            out.push('/');
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let value = found.get(name)?;
                    assert!(!value.is_empty() && !value.contains('/'), "{value:?}");
                    out.push_str(value);
                }
                None => out.push_str(segment),
            }
        }
        (out == path).then_some(out)
    });
    assert!(rebuilt.is_some(), "the values of {path:?} rebuild it");
}
