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

/// One view of a response's header fields, whether they are in its map or still in the bytes an
/// HTTP/1.1 upstream sent them in (kept there so responses no plugin touches are not parsed into a
/// map). Names set in the map win over the raw fields of the same name, as the writers do.
pub struct ResponseHeaders<'a> {
    map: &'a mut HeaderMap,
    raw: &'a mut RawFields,
}

impl<'a> ResponseHeaders<'a> {
    /// A view of `map` and the raw fields beside it.
    pub fn new(map: &'a mut HeaderMap, raw: &'a mut RawFields) -> Self {
        Self { map, raw }
    }

    /// The first value of `name`.
    pub fn get<'s>(&'s self, name: &'s HeaderName) -> Option<&'s [u8]> {
        match self.map.get(name) {
            Some(value) => Some(value.as_bytes()),
            None => self.raw.values(name.as_str()).next(),
        }
    }

    /// Whether a field named `name` is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, replacing every field of that name.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        // The map's field hides raw fields of the same name when written.
        self.map.insert(name, value);
    }

    /// Adds a field, keeping those of the same name.
    pub fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.raw_into_map_if_has(&name);
        self.map.append(name, value);
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        if self.raw.contains(name.as_str()) {
            // Moved even when the map has the name: its raw fields would show again once it is gone.
            std::mem::take(self.raw).append_to(self.map);
        }
        self.map.remove(name);
    }

    /// Moves the raw fields into the map when one is named `name` and the map has none of that name,
    /// so an edit of that name sees all of its values. Rare: only responses a plugin edits that way.
    fn raw_into_map_if_has(&mut self, name: &HeaderName) {
        if !self.map.contains_key(name) && self.raw.contains(name.as_str()) {
            std::mem::take(self.raw).append_to(self.map);
        }
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
        let mut raw = raw();
        let mut view = ResponseHeaders::new(&mut map, &mut raw);
        assert_eq!(view.get(&SERVER), Some(&b"up"[..]));
        view.set(SERVER, HeaderValue::from_static("gw"));
        assert_eq!(view.get(&SERVER), Some(&b"gw"[..]));
    }

    #[test]
    fn append_keeps_the_upstreams_values_and_remove_removes_raw_fields() {
        let mut map = HeaderMap::new();
        let mut raw = raw();
        let mut view = ResponseHeaders::new(&mut map, &mut raw);
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
    fn remove_after_set_removes_the_raw_field_too() {
        let mut map = HeaderMap::new();
        let mut raw = raw();
        let mut view = ResponseHeaders::new(&mut map, &mut raw);
        view.set(SERVER, HeaderValue::from_static("gw"));
        view.remove(&SERVER);
        assert!(!view.contains(&SERVER));
    }
}
