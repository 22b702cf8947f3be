//! The header's grammar, over bytes alone: what a connection's first bytes amount to, and where the
//! header ends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest v1 line, CRLF included: the specification's own bound (the longest TCP6 line takes 104
/// bytes; an `UNKNOWN` line may fill the rest).
pub const V1_MAX_LEN: usize = 107;

const V1_PREFIX: &[u8] = b"PROXY ";

/// The first 12 bytes of every v2 header; it cannot begin an HTTP request or a TLS record.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The signature, the version and command byte, the family and transport byte, and the 16-bit length
/// of the rest.
const V2_FIXED_LEN: usize = 16;

/// Longest address block plus TLVs a v2 header may declare. Its 16-bit length would allow 64 KiB; this
/// leaves room for the largest address (unix sockets, 216 bytes) and the TLVs load balancers add (an AWS
/// VPC endpoint id, HAProxy's TLS details) while bounding what a peer makes the gateway hold.
pub const V2_MAX_PAYLOAD: usize = 1024;

/// Longest header of either version.
pub const MAX_HEADER_LEN: usize = V2_FIXED_LEN + V2_MAX_PAYLOAD;

/// What the bytes at a connection's start amount to so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The start of a valid header; more bytes are needed.
    Incomplete,
    /// A whole header of `len` bytes. `source` is the client it names, or `None` when it names none
    /// (v1 `UNKNOWN`, v2 `LOCAL` as load balancers' health checks send, or a v2 family other than TCP
    /// over IPv4 or IPv6), and the socket's peer stands.
    Header {
        /// Bytes the header takes, from the connection's first.
        len: usize,
        /// The client's address.
        source: Option<SocketAddr>,
    },
}

/// Bytes that are not, and cannot become, a valid header. The message says which rule they broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid PROXY protocol header: {0}")]
pub struct InvalidHeader(&'static str);

/// Parses the header at the start of `buf`, which may also hold bytes that follow it.
///
/// Errors as soon as a wrong byte is seen, without waiting for the rest. `Incomplete` is only returned
/// for fewer than [`MAX_HEADER_LEN`] bytes, and a header's `len` is never more than `buf.len()` nor
/// [`MAX_HEADER_LEN`].
pub fn parse(buf: &[u8]) -> Result<Parsed, InvalidHeader> {
    if buf.is_empty() {
        return Ok(Parsed::Incomplete);
    }
    if is_prefix_of(buf, &V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if is_prefix_of(buf, V1_PREFIX) {
        return parse_v1(buf);
    }
    Err(InvalidHeader("no PROXY protocol signature"))
}

/// Whether `buf` and `expected` agree on the bytes both have.
fn is_prefix_of(buf: &[u8], expected: &[u8]) -> bool {
    let n = buf.len().min(expected.len());
    buf[..n] == expected[..n]
}

/// Version 1: `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` or `PROXY UNKNOWN...\r\n`, single spaces,
/// printable ASCII only.
fn parse_v1(buf: &[u8]) -> Result<Parsed, InvalidHeader> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if window.len() == V1_MAX_LEN {
            return Err(InvalidHeader("v1 line longer than 107 bytes"));
        }
        let (last, before) = window.split_last().unwrap_or((&b' ', &[]));
        if !before.iter().all(is_v1_char) {
            return Err(InvalidHeader("v1 line with a control byte"));
        }
        if !(is_v1_char(last) || *last == b'\r') {
            return Err(InvalidHeader("v1 line with a control byte"));
        }
        return Ok(Parsed::Incomplete);
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(InvalidHeader("v1 line not ending in CRLF"));
    }
    let line = &window[..lf - 1];
    if !line.iter().all(is_v1_char) {
        return Err(InvalidHeader("v1 line with a control byte"));
    }
    let line = std::str::from_utf8(line).map_err(|_| InvalidHeader("v1 line not ASCII"))?;
    let mut fields = line.split(' ');
    // The prefix check already saw "PROXY ".
    fields.next();
    let source = match fields.next() {
        // The specification asks receivers to ignore whatever follows UNKNOWN up to the CRLF.
        Some("UNKNOWN") => None,
        Some("TCP4") => Some(v1_source(&mut fields, |s| {
            s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
        })?),
        Some("TCP6") => Some(v1_source(&mut fields, |s| {
            s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })?),
        _ => return Err(InvalidHeader("v1 protocol not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parsed::Header {
        len: lf + 1,
        source,
    })
}

/// The source address of a v1 TCP line's remaining fields: `<src> <dst> <sport> <dport>` and nothing more.
/// Both addresses and ports must be valid, though only the source is used.
fn v1_source<'a>(
    fields: &mut impl Iterator<Item = &'a str>,
    address: impl Fn(&str) -> Option<IpAddr>,
) -> Result<SocketAddr, InvalidHeader> {
    let mut next = || {
        fields
            .next()
            .ok_or(InvalidHeader("v1 line with missing fields"))
    };
    let source = address(next()?).ok_or(InvalidHeader("v1 source address"))?;
    address(next()?).ok_or(InvalidHeader("v1 destination address"))?;
    let source_port = v1_port(next()?)?;
    v1_port(next()?)?;
    if fields.next().is_some() {
        return Err(InvalidHeader("v1 line with extra fields"));
    }
    Ok(SocketAddr::new(source, source_port))
}

/// A port in plain decimal: digits only, no sign, no leading zero.
fn v1_port(field: &str) -> Result<u16, InvalidHeader> {
    let canonical = !field.is_empty()
        && field.len() <= 5
        && field.bytes().all(|b| b.is_ascii_digit())
        && (field == "0" || !field.starts_with('0'));
    if !canonical {
        return Err(InvalidHeader("v1 port"));
    }
    field.parse().map_err(|_| InvalidHeader("v1 port"))
}

/// Version 2: the signature, then version 2 with command `LOCAL` or `PROXY`, a family and transport,
/// a big-endian length, and that many bytes of addresses and TLVs (which are not needed and skipped).
fn parse_v2(buf: &[u8]) -> Result<Parsed, InvalidHeader> {
    let Some(&version_command) = buf.get(12) else {
        return Ok(Parsed::Incomplete);
    };
    if version_command >> 4 != 2 {
        return Err(InvalidHeader("v2 version"));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(InvalidHeader("v2 command")),
    };
    let Some(&family) = buf.get(13) else {
        return Ok(Parsed::Incomplete);
    };
    // LOCAL connections (a load balancer's own, such as health checks) carry no client: the
    // specification has the receiver ignore their family and address block.
    let address_len = if local {
        0
    } else {
        match family {
            // UNSPEC, TCP or UDP over IPv4, over IPv6, over unix sockets: the only valid combinations.
            0x00 => 0,
            0x11 | 0x12 => 12,
            0x21 | 0x22 => 36,
            0x31 | 0x32 => 216,
            _ => return Err(InvalidHeader("v2 family and transport")),
        }
    };
    let (Some(&high), Some(&low)) = (buf.get(14), buf.get(15)) else {
        return Ok(Parsed::Incomplete);
    };
    let payload_len = usize::from(u16::from_be_bytes([high, low]));
    if payload_len > V2_MAX_PAYLOAD {
        return Err(InvalidHeader("v2 header longer than the gateway accepts"));
    }
    if payload_len < address_len {
        return Err(InvalidHeader("v2 address block shorter than its family's"));
    }
    let len = V2_FIXED_LEN + payload_len;
    let Some(payload) = buf.get(V2_FIXED_LEN..len) else {
        return Ok(Parsed::Incomplete);
    };
    let source = match (local, family) {
        (false, 0x11) => {
            let ip: [u8; 4] = payload[0..4].try_into().unwrap_or_default();
            let port = u16::from_be_bytes([payload[8], payload[9]]);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        (false, 0x21) => {
            let ip: [u8; 16] = payload[0..16].try_into().unwrap_or_default();
            let port = u16::from_be_bytes([payload[32], payload[33]]);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        // UDP and unix sockets name no TCP client: the specification has a receiver that does not
        // support them fall back to the connection's own addresses, as for UNSPEC.
        _ => None,
    };
    Ok(Parsed::Header { len, source })
}

/// Printable ASCII and the space: what a v1 line may hold.
fn is_v1_char(byte: &u8) -> bool {
    byte.is_ascii_graphic() || *byte == b' '
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> (usize, Option<SocketAddr>) {
        match parse(bytes) {
            Ok(Parsed::Header { len, source }) => (len, source),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn invalid(bytes: &[u8]) -> bool {
        parse(bytes).is_err()
    }

    pub(in crate::proxy_protocol) fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    /// A v2 header: `command` 0 (LOCAL) or 1 (PROXY), `family`, then `payload`.
    pub(in crate::proxy_protocol) fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    pub(in crate::proxy_protocol) fn v2_tcp4_payload() -> Vec<u8> {
        let mut p = vec![203, 0, 113, 7, 10, 0, 0, 1];
        p.extend_from_slice(&51234u16.to_be_bytes());
        p.extend_from_slice(&443u16.to_be_bytes());
        p
    }

    #[test]
    fn v1_tcp4_and_tcp6_name_the_source_and_leave_what_follows() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\n";
        let mut with_request = line.to_vec();
        with_request.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            header(&with_request),
            (line.len(), addr("203.0.113.7:51234"))
        );
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n";
        assert_eq!(header(line), (line.len(), addr("[2001:db8::7]:65535")));
    }

    #[test]
    fn v1_unknown_keeps_the_peer_and_ignores_the_rest_of_its_line() {
        assert_eq!(header(b"PROXY UNKNOWN\r\n"), (15, None));
        let line = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert_eq!(header(line), (line.len(), None));
    }

    #[test]
    fn v1_longest_line_is_accepted_and_one_byte_more_is_not() {
        let longest_tcp6 = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(header(longest_tcp6).0, longest_tcp6.len());
        // UNKNOWN may carry anything up to the bound.
        let mut longest = b"PROXY UNKNOWN ".to_vec();
        longest.resize(V1_MAX_LEN - 2, b'x');
        longest.extend_from_slice(b"\r\n");
        assert_eq!(header(&longest), (V1_MAX_LEN, None));
        let mut too_long = longest[..V1_MAX_LEN - 2].to_vec();
        too_long.extend_from_slice(b"x\r\n");
        assert!(invalid(&too_long));
        // Refused once 107 bytes are in without a line end, not later.
        assert!(invalid(&too_long[..V1_MAX_LEN]));
        assert_eq!(parse(&too_long[..V1_MAX_LEN - 1]), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v1_is_strict() {
        for bad in [
            &b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\n"[..],
            b"PROXY TCP4 203.0.113.7  10.0.0.1 51234 80\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80 \r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 051234 80\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 65536 80\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 +1 80\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51234\r\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 51234 80\r\n",
            b"PROXY TCP6 203.0.113.7 2001:db8::1 51234 80\r\n",
            b"PROXY TCP4 203.0.113.07 10.0.0.1 51234 80\r\n",
            b"PROXY tcp4 203.0.113.7 10.0.0.1 51234 80\r\n",
            b"PROXY UDP4 203.0.113.7 10.0.0.1 51234 80\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY TCP4 203.0.113.7\t10.0.0.1 51234 80\r\n",
            b"PROXY \r\n",
            b"PROXY\r\n",
            b"GET / HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00",
        ] {
            assert!(invalid(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn partial_headers_are_incomplete_and_wrong_bytes_fail_at_once() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\n";
        for n in 0..line.len() {
            assert_eq!(parse(&line[..n]), Ok(Parsed::Incomplete), "{n}");
        }
        let whole = v2(1, 0x11, &v2_tcp4_payload());
        for n in 0..whole.len() {
            assert_eq!(parse(&whole[..n]), Ok(Parsed::Incomplete), "{n}");
        }
        assert!(invalid(b"PROXY TCP4 1.2.3.4\0"));
        assert!(invalid(b"PROXY TCP4 1.2.3.4\r "));
        assert!(invalid(b"G"));
        assert!(invalid(b"\r\n\r\n\0\r\nQUIX"));
    }

    #[test]
    fn v2_tcp4_and_tcp6_name_the_source_and_skip_tlvs() {
        let mut payload = v2_tcp4_payload();
        // An AWS-style TLV (type 0xEA), which is not needed and skipped.
        payload.extend_from_slice(&[0xea, 0, 4, 1, b'v', b'p', b'c']);
        let mut bytes = v2(1, 0x11, &payload);
        let len = bytes.len();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(header(&bytes), (len, addr("203.0.113.7:51234")));

        let mut payload = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        payload.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        payload.extend_from_slice(&[0xc8, 0x20, 0x01, 0xbb]);
        let bytes = v2(1, 0x21, &payload);
        assert_eq!(header(&bytes), (bytes.len(), addr("[2001:db8::7]:51232")));
    }

    #[test]
    fn v2_local_unspec_udp_and_unix_keep_the_peer() {
        assert_eq!(header(&v2(0, 0x00, &[])), (16, None));
        // LOCAL ignores its family and addresses, whatever they are.
        assert_eq!(header(&v2(0, 0x11, &v2_tcp4_payload())).1, None);
        assert_eq!(header(&v2(0, 0xff, &[])).1, None);
        assert_eq!(header(&v2(1, 0x00, &[])).1, None);
        assert_eq!(header(&v2(1, 0x12, &v2_tcp4_payload())).1, None);
        assert_eq!(header(&v2(1, 0x31, &[0; 216])).1, None);
    }

    #[test]
    fn v2_is_strict() {
        let mut wrong_version = v2(1, 0x11, &v2_tcp4_payload());
        wrong_version[12] = 0x11;
        assert!(invalid(&wrong_version));
        let mut wrong_command = v2(1, 0x11, &v2_tcp4_payload());
        wrong_command[12] = 0x22;
        assert!(invalid(&wrong_command));
        for family in [0x10, 0x13, 0x20, 0x41, 0x01] {
            assert!(invalid(&v2(1, family, &v2_tcp4_payload())), "{family:#x}");
        }
        // Shorter than the family's addresses.
        assert!(invalid(&v2(1, 0x11, &[0; 11])));
        assert!(invalid(&v2(1, 0x21, &[0; 35])));
        // Longer than the bound: refused from its fixed part, before its payload arrives.
        let mut too_long = V2_SIGNATURE.to_vec();
        too_long.extend_from_slice(&[0x21, 0x11]);
        too_long.extend_from_slice(&((V2_MAX_PAYLOAD + 1) as u16).to_be_bytes());
        assert!(invalid(&too_long));
        too_long.truncate(14);
        too_long.extend_from_slice(&(V2_MAX_PAYLOAD as u16).to_be_bytes());
        assert_eq!(parse(&too_long), Ok(Parsed::Incomplete));
    }

    /// Properties over many mutated headers (run as an ordinary test): parsing never panics, a header's
    /// length never passes the input or the bound, an incomplete input is always shorter than the bound,
    /// and a header's verdict does not change with the bytes that follow it.
    #[test]
    fn mutated_headers_keep_the_length_invariants() {
        let seeds: Vec<Vec<u8>> = vec![
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(1, 0x11, &v2_tcp4_payload()),
            v2(1, 0x21, &[7; 40]),
            v2(0, 0x00, &[]),
            v2(1, 0x31, &[1; 300]),
        ];
        let mut rng = fastrand::Rng::with_seed(0x9e37_79b9);
        for round in 0..200_000 {
            let mut input = seeds[round % seeds.len()].clone();
            for _ in 0..rng.usize(1..4) {
                match rng.u8(0..5) {
                    0 if !input.is_empty() => {
                        let i = rng.usize(0..input.len());
                        input[i] = rng.u8(..);
                    }
                    1 => input.truncate(rng.usize(0..=input.len())),
                    2 => {
                        let i = rng.usize(0..=input.len());
                        input.insert(i, rng.u8(..));
                    }
                    3 if input.len() > 15 => {
                        // The v2 length bytes, where a lie matters most.
                        input[14] = rng.u8(..);
                        input[15] = rng.u8(..);
                    }
                    _ => input.extend((0..rng.usize(0..64)).map(|_| rng.u8(..))),
                }
            }
            match parse(&input) {
                Ok(Parsed::Incomplete) => assert!(input.len() < MAX_HEADER_LEN, "{input:?}"),
                Ok(Parsed::Header { len, .. }) => {
                    assert!(len <= input.len() && len <= MAX_HEADER_LEN, "{input:?}");
                    if input.starts_with(b"P") {
                        assert!(len <= V1_MAX_LEN, "{input:?}");
                    }
                    let verdict = parse(&input);
                    input.extend_from_slice(b"\r\n\x16\x03 trailing");
                    assert_eq!(parse(&input), verdict);
                    assert_eq!(parse(&input[..len]), verdict);
                }
                Err(_) => {}
            }
        }
    }
}
