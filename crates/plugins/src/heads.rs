//! The views of a request and a response that plugin phases work on.

use floodgate_http1::RawFields;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

/// The client's request as the `request` phase sees it. Headers may be changed (an auth plugin may
/// remove the credential); they are what the upstream gets, after the `upstream_request` phase.
pub struct RequestHead<'a> {
    /// Method.
    pub method: &'a Method,
    /// Target as routed (normalised path).
    pub uri: &'a Uri,
    /// Header fields.
    pub headers: &'a mut HeaderMap,
}

/// The request on its way to the upstream, as the `upstream_request` phase shapes it.
pub struct UpstreamRequest<'a> {
    /// Method.
    pub method: &'a Method,
    /// Header fields sent upstream (the gateway's forwarding fields are added after this phase).
    pub headers: &'a mut HeaderMap,
    /// Path and query sent upstream.
    pub path: &'a mut PathAndQuery,
    /// `Host` (HTTP/1.1) or `:authority` (HTTP/2) sent upstream.
    pub host: &'a mut HeaderValue,
}

/// The response head going back to the client, as the `response` phase shapes it.
pub struct ResponseHead<'a> {
    /// Status code.
    pub status: &'a mut StatusCode,
    /// Header fields.
    pub headers: ResponseHeaders<'a>,
}

/// Fields the gateway adds to a response, kept in a short list rather than a `HeaderMap`: most
/// routes with plugins add two or three fields (rate-limit and CORS fields), and a map would cost an
/// allocation and a hash per field, only for the writer to write them out again. A name in the list
/// hides the upstream's raw fields of that name.
pub type AddedFields = Vec<(HeaderName, HeaderValue)>;

/// One view of a response's header fields, whether they are in its map, in the short list of fields
/// the gateway added, or still in the bytes an HTTP/1.1 upstream sent them in (kept there so
/// responses no plugin touches are not parsed into a map). Names set in the map or the list win over
/// the raw fields of the same name, as the writers do.
pub struct ResponseHeaders<'a> {
    map: &'a mut HeaderMap,
    added: &'a mut AddedFields,
    raw: &'a mut RawFields,
}

impl<'a> ResponseHeaders<'a> {
    /// A view of `map`, the fields added beside it and the raw fields beside both.
    pub fn new(map: &'a mut HeaderMap, added: &'a mut AddedFields, raw: &'a mut RawFields) -> Self {
        Self { map, added, raw }
    }

    /// The first value of `name`.
    pub fn get<'s>(&'s self, name: &'s HeaderName) -> Option<&'s [u8]> {
        if let Some(value) = self.map.get(name) {
            return Some(value.as_bytes());
        }
        if let Some((_, value)) = self.added.iter().find(|(n, _)| n == name) {
            return Some(value.as_bytes());
        }
        self.raw.values(name.as_str()).next()
    }

    /// Whether a field named `name` is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// Sets each of `fields` as [`ResponseHeaders::set`] does, emptying `fields`. The common case, a
    /// response nothing else has touched and fields of distinct names, takes the vector as it is:
    /// no copy and no allocation.
    pub fn set_all(&mut self, fields: &mut AddedFields) {
        let distinct = fields
            .iter()
            .enumerate()
            .all(|(i, (name, _))| fields[..i].iter().all(|(n, _)| n != name));
        if self.added.is_empty() && self.map.is_empty() && distinct {
            std::mem::swap(self.added, fields);
            return;
        }
        for (name, value) in fields.drain(..) {
            self.set(name, value);
        }
    }

    /// Sets `name` to `value`, replacing every field of that name.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        if self.map.contains_key(&name) {
            self.map.insert(name, value);
            return;
        }
        // The list's field hides raw fields of the same name when written.
        self.added.retain(|(n, _)| *n != name);
        self.added.push((name, value));
    }

    /// Adds a field, keeping those of the same name.
    pub fn append(&mut self, name: HeaderName, value: HeaderValue) {
        if self.added.iter().any(|(n, _)| *n == name) {
            self.added.push((name, value));
        } else if self.map.contains_key(&name) || self.raw.contains(name.as_str()) {
            self.raw_into_map_if_has(&name);
            self.map.append(name, value);
        } else {
            self.added.push((name, value));
        }
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.added.retain(|(n, _)| n != name);
        if self.raw.contains(name.as_str()) {
            // Moved even when the map has the name: its raw fields would show again once it is gone.
            self.all_into_map();
        }
        self.map.remove(name);
    }

    /// Moves the raw fields into the map when one is named `name` and the map has none of that name,
    /// so an edit of that name sees all of its values. Rare: only responses a plugin edits that way.
    fn raw_into_map_if_has(&mut self, name: &HeaderName) {
        if !self.map.contains_key(name) && self.raw.contains(name.as_str()) {
            self.all_into_map();
        }
    }

    /// Moves the added fields, then the raw ones, into the map: the added ones first, so the raw
    /// fields they hide stay hidden (`append_to` leaves out names the map has).
    fn all_into_map(&mut self) {
        for (name, value) in self.added.drain(..) {
            self.map.append(name, value);
        }
        std::mem::take(self.raw).append_to(self.map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_http1::raw_fields_of;
    use http::header::{SERVER, VARY};

    fn raw() -> RawFields {
        raw_fields_of(b"Server: up\r\nVary: Accept\r\nX-A: 1\r\n\r\n").unwrap()
    }

    #[test]
    fn reads_see_raw_fields_and_the_map_wins() {
        let mut map = HeaderMap::new();
        let mut added = AddedFields::new();
        let mut raw = raw();
        let mut view = ResponseHeaders::new(&mut map, &mut added, &mut raw);
        assert_eq!(view.get(&SERVER), Some(&b"up"[..]));
        view.set(SERVER, HeaderValue::from_static("gw"));
        assert_eq!(view.get(&SERVER), Some(&b"gw"[..]));
    }

    #[test]
    fn append_keeps_the_upstreams_values_and_remove_removes_raw_fields() {
        let mut map = HeaderMap::new();
        let mut added = AddedFields::new();
        let mut raw = raw();
        let mut view = ResponseHeaders::new(&mut map, &mut added, &mut raw);
        view.append(VARY, HeaderValue::from_static("Origin"));
        view.remove(&SERVER);
        assert!(!view.contains(&SERVER));
        let vary: Vec<_> = map.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Accept", "Origin"]);
        assert!(map.get(SERVER).is_none());
        assert_eq!(map.get("x-a").unwrap(), "1");
        assert!(!raw.contains("server"), "raw fields moved into the map");
    }

    #[test]
    fn fields_the_gateway_adds_go_to_the_list_and_hide_the_raw_ones() {
        let mut map = HeaderMap::new();
        let mut added = AddedFields::new();
        let mut raw = raw();
        let mut view = ResponseHeaders::new(&mut map, &mut added, &mut raw);
        view.set(SERVER, HeaderValue::from_static("gw"));
        view.append(
            HeaderName::from_static("x-new"),
            HeaderValue::from_static("1"),
        );
        view.append(
            HeaderName::from_static("x-new"),
            HeaderValue::from_static("2"),
        );
        assert_eq!(view.get(&SERVER), Some(&b"gw"[..]));
        view.set(SERVER, HeaderValue::from_static("gw2"));
        assert!(map.is_empty(), "nothing went to the map");
        let names: Vec<_> = added
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(names, [("x-new", "1"), ("x-new", "2"), ("server", "gw2")]);
    }

    #[test]
    fn remove_after_set_removes_the_raw_field_too() {
        let mut map = HeaderMap::new();
        let mut added = AddedFields::new();
        let mut raw = raw();
        let mut view = ResponseHeaders::new(&mut map, &mut added, &mut raw);
        view.set(SERVER, HeaderValue::from_static("gw"));
        view.remove(&SERVER);
        assert!(!view.contains(&SERVER));
    }
}
