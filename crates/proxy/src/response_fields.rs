//! Header fields that go out with a response without being in its `HeaderMap`.
//!
//! Most responses carry the upstream's fields unchanged and one field of the gateway's own, the request
//! id. Putting them in the map would cost, per request, an allocated map, a hash per field and a
//! reference count per value, only for the HTTP/1.1 writer to write them out again. So they travel with
//! the response body instead: the writer writes them after the map's fields, and anything that needs
//! them in the map (hyper's HTTP/2 server, which writes only the map) calls
//! [`ResponseFields::move_into`] first. The map's fields win over these: a name set there is not written
//! again from here.

use http::{HeaderMap, HeaderValue};

use crate::request_id::X_REQUEST_ID;
use floodgate_http1::{encode_field, RawFields};

/// The fields of a response kept beside its map.
#[derive(Debug, Default)]
pub struct ResponseFields {
    /// The upstream's fields, as the bytes they arrived in (HTTP/1.1 upstreams only).
    pub upstream: RawFields,
    /// Fields plugins added (rate-limit and CORS fields); a name here hides the upstream's fields
    /// of that name, and the map's fields win over both.
    pub added: floodgate_plugins::AddedFields,
    /// The request id the gateway answers with; it replaces an upstream's `X-Request-Id`.
    pub request_id: Option<HeaderValue>,
}

impl ResponseFields {
    /// For each of `names` (lowercase), whether the upstream sent a field of that name that `map`
    /// and the added fields do not replace. One pass over the upstream's fields answers them all (the
    /// writer asks two names of every response).
    pub fn upstream_has<const N: usize>(
        &self,
        names: [&http::HeaderName; N],
        map: &HeaderMap,
    ) -> [bool; N] {
        let mut found = [false; N];
        for (name, _) in self.upstream.iter() {
            for (wanted, slot) in names.iter().zip(&mut found) {
                *slot |= name.eq_ignore_ascii_case(wanted.as_str().as_bytes());
            }
        }
        for (name, slot) in names.iter().zip(&mut found) {
            *slot =
                *slot && !map.contains_key(*name) && !self.added.iter().any(|(n, _)| n == *name);
        }
        found
    }

    /// About how many bytes [`ResponseFields::encode`] writes, to size the head's buffer once.
    pub fn encoded_len_hint(&self) -> usize {
        self.upstream.head_len()
            + self
                .added
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum::<usize>()
            + self.request_id.as_ref().map_or(0, |id| id.len() + 16)
    }

    /// Writes the fields as header lines, leaving out names `map` has (written from there).
    pub fn encode(&self, out: &mut Vec<u8>, map: &HeaderMap) {
        let own_id = self
            .request_id
            .as_ref()
            .filter(|_| !map.contains_key(&X_REQUEST_ID));
        if let Some(id) = own_id {
            encode_field(out, X_REQUEST_ID.as_str().as_bytes(), id.as_bytes());
        }
        for (name, value) in &self.added {
            if map.is_empty() || !map.contains_key(name) {
                encode_field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        self.upstream.encode(out, |name| {
            (own_id.is_some() && name.eq_ignore_ascii_case(X_REQUEST_ID.as_str().as_bytes()))
                || (!map.is_empty()
                    && map
                        .keys()
                        .any(|key| key.as_str().as_bytes().eq_ignore_ascii_case(name)))
                || self
                    .added
                    .iter()
                    .any(|(key, _)| key.as_str().as_bytes().eq_ignore_ascii_case(name))
        });
    }

    /// Puts the fields in `map`, except names it already has.
    pub fn move_into(self, map: &mut HeaderMap) {
        if let Some(id) = self.request_id {
            if !map.contains_key(&X_REQUEST_ID) {
                map.insert(&X_REQUEST_ID, id);
            }
        }
        // Names the map already has win; the added fields then hide the upstream's of their names,
        // which `append_to` leaves out once the map has them.
        let preset: Vec<http::HeaderName> = self
            .added
            .iter()
            .filter(|(name, _)| map.contains_key(name))
            .map(|(name, _)| name.clone())
            .collect();
        for (name, value) in self.added {
            if !preset.contains(&name) {
                map.append(name, value);
            }
        }
        self.upstream.append_to(map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_http1::raw_fields_of;

    #[test]
    fn the_gateways_request_id_replaces_the_upstreams_and_the_map_wins_over_both() {
        let fields = ResponseFields {
            upstream: raw_fields_of(b"Server: up\r\nX-Request-Id: theirs\r\nX-A: 1\r\n\r\n")
                .unwrap(),
            added: Vec::new(),
            request_id: Some(HeaderValue::from_static("ours")),
        };
        let mut out = Vec::new();
        fields.encode(&mut out, &HeaderMap::new());
        assert_eq!(out, b"x-request-id: ours\r\nServer: up\r\nX-A: 1\r\n");

        let mut map = HeaderMap::new();
        map.insert("x-a", HeaderValue::from_static("set"));
        map.insert("x-request-id", HeaderValue::from_static("in-map"));
        let mut out = Vec::new();
        fields.encode(&mut out, &map);
        assert_eq!(out, b"Server: up\r\n");
        assert_eq!(
            fields.upstream_has([&http::header::SERVER, &http::header::DATE], &map),
            [true, false]
        );

        let mut map = HeaderMap::new();
        fields.move_into(&mut map);
        assert_eq!(map.get("x-request-id").unwrap(), "ours");
        assert_eq!(map.get("server").unwrap(), "up");
        assert_eq!(map.get("x-a").unwrap(), "1");
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn added_fields_hide_the_upstreams_and_the_map_wins_over_them() {
        let mut fields = ResponseFields {
            upstream: raw_fields_of(b"Server: up\r\nVary: Accept\r\nX-A: 1\r\n\r\n").unwrap(),
            added: vec![
                (http::header::SERVER, HeaderValue::from_static("gw")),
                (
                    http::HeaderName::from_static("ratelimit"),
                    HeaderValue::from_static("r=1"),
                ),
            ],
            request_id: None,
        };
        let mut map = HeaderMap::new();
        map.insert("ratelimit", HeaderValue::from_static("in-map"));
        let mut out = Vec::new();
        fields.encode(&mut out, &map);
        assert_eq!(out, b"server: gw\r\nVary: Accept\r\nX-A: 1\r\n");
        assert_eq!(
            fields.upstream_has(
                [&http::header::SERVER, &http::header::VARY],
                &HeaderMap::new()
            ),
            [false, true]
        );

        fields.request_id = Some(HeaderValue::from_static("id"));
        fields.move_into(&mut map);
        assert_eq!(map["server"], "gw");
        assert_eq!(map.get_all("server").iter().count(), 1);
        assert_eq!(map["ratelimit"], "in-map");
        assert_eq!(map.get_all("ratelimit").iter().count(), 1);
        assert_eq!(map["vary"], "Accept");
        assert_eq!(map["x-request-id"], "id");
    }
}
