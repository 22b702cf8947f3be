//! Where a request carries its token: a header, a cookie, a query parameter.

use http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::authorization::credentials;
use crate::copies::{ConflictingCopies, OneCredential};
use crate::query::{ParamName, Separators};

/// The places a token is looked for: the header, the cookie, the query parameter. A token may come
/// in several of them, but it must be the same token in each.
pub struct TokenSources {
    /// The header; `Authorization` carries `Bearer <token>` (RFC 6750 §2.1), any other header the
    /// token itself (a `Bearer ` prefix is allowed there too).
    pub header: Option<HeaderName>,
    /// The cookie's name, matched as upstreams read cookie names (PHP decodes and reads them as it
    /// reads parameter names: [`crate::query`]).
    pub cookie: Option<ParamName>,
    /// The query parameter's name.
    pub query: Option<ParamName>,
    /// Whether the header has a `-` or `_`, so twins an upstream reads as the same header.
    header_twins: bool,
}

impl TokenSources {
    /// The sources of these names, the query split on `separators`.
    pub fn new(
        header: Option<HeaderName>,
        cookie: Option<&str>,
        query: Option<&str>,
        separators: Separators,
    ) -> Self {
        Self {
            header_twins: header
                .as_ref()
                .is_some_and(|h| floodgate_http1::can_have_twins(h.as_str().as_bytes())),
            header,
            cookie: cookie.map(|name| ParamName::new(name, separators)),
            query: query.map(|name| ParamName::new(name, separators)),
        }
    }

    /// The request's token: `Ok(None)` when no source carries a non-empty one, and
    /// [`ConflictingCopies`] when its sources (several field lines, the header's twins, cookies or
    /// parameters included) carry different ones ([`one_credential`]).
    pub fn find<'r>(
        &'r self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Result<Option<&'r [u8]>, ConflictingCopies> {
        self.find_and_twins(headers, query).0
    }

    /// [`TokenSources::find`], and whether the request has a twin of the header (`x_token` for
    /// `x-token`), which an upstream reading `HTTP_X_TOKEN` takes for the header itself: it is read
    /// as a copy of the token, and must not reach the upstream. One pass over the names finds twins,
    /// and only when the header can have any.
    pub fn find_and_twins<'r>(
        &'r self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> (Result<Option<&'r [u8]>, ConflictingCopies>, bool) {
        let twinned = self.header_twins
            && self
                .header
                .as_ref()
                .is_some_and(|name| floodgate_http1::has_twin(headers, name));
        (self.collect(headers, query, twinned), twinned)
    }

    /// Every copy of the token in the request, walked source by source with plain loops: this runs
    /// for every request of a `jwt-auth` route, where one iterator chained over the sources cost
    /// about 200 instructions more.
    fn collect<'r>(
        &'r self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
        twinned: bool,
    ) -> Result<Option<&'r [u8]>, ConflictingCopies> {
        let mut one = OneCredential::default();
        if let Some(name) = &self.header {
            for value in headers.get_all(name) {
                if let Some(token) = header_token(name, value) {
                    one.add(token)?;
                }
            }
            if twinned {
                for twin in floodgate_http1::twins(headers, name) {
                    for value in headers.get_all(twin) {
                        if let Some(token) = header_token(name, value) {
                            one.add(token)?;
                        }
                    }
                }
            }
        }
        if self.cookie.is_some() {
            for token in self.in_cookie(headers) {
                one.add(token.as_bytes())?;
            }
        }
        if let Some(name) = &self.query {
            for token in name.params(query) {
                one.add(token.as_bytes())?;
            }
        }
        Ok(one.get())
    }

    /// Removes the twins of the header (the header itself stays): checked as copies of the token, they
    /// still go, so the upstream reads the one spelling the gateway was configured with.
    pub fn remove_twins(&self, headers: &mut HeaderMap) {
        if let Some(name) = &self.header {
            floodgate_http1::remove_twins(headers, &[name]);
        }
    }

    fn in_cookie<'r>(&'r self, headers: &'r HeaderMap) -> impl Iterator<Item = &'r str> {
        self.cookie.iter().flat_map(move |name| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(move |pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    // Whitespace around `=` is trimmed, as upstream parsers (Go's, for one) trim it:
                    // a `jwt =x` the gateway did not read as `jwt` must not be one the upstream reads so.
                    name.matches(key.trim_end())
                        .then(|| value.trim_start().trim_matches('"'))
                })
        })
    }

    /// Removes the token's header, its twins and cookie from `headers` (the query parameter is
    /// removed when the upstream request is shaped).
    pub fn hide(&self, headers: &mut HeaderMap) {
        if let Some(name) = &self.header {
            floodgate_http1::remove_with_twins(headers, name);
        }
        let Some(name) = &self.cookie else {
            return;
        };
        let cookies: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
        if cookies.is_empty() {
            return;
        }
        let kept: Vec<&str> = cookies
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| {
                !pair.is_empty()
                    && !name.matches(pair.split_once('=').map_or(*pair, |(k, _)| k).trim_end())
            })
            .collect();
        headers.remove(header::COOKIE);
        if !kept.is_empty() {
            if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
                headers.insert(header::COOKIE, value);
            }
        }
    }
}

/// The token a field line of the header `name` carries: `Authorization` carries `Bearer <token>`
/// (another scheme, Basic or a key, is no bearer token at all), any other header the token itself
/// (a `Bearer ` prefix allowed).
fn header_token<'r>(name: &HeaderName, value: &'r HeaderValue) -> Option<&'r [u8]> {
    // Bytes, not `to_str` and `str` searches: a token is a couple of hundred bytes, read on every
    // request, and a cached token is compared whole, so one that is not the cached one's bytes is a
    // miss, and a miss is verified, which refuses anything but base64url and dots.
    let value = value.as_bytes().trim_ascii();
    match bearer(value) {
        Some(token) => Some(token),
        None if name == header::AUTHORIZATION => None,
        None => Some(value),
    }
}

/// The token of a `Bearer <token>` credential; `Bearer` alone carries none.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    credentials(value, b"bearer").filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> TokenSources {
        TokenSources::new(
            Some(header::AUTHORIZATION),
            Some("jwt"),
            Some("access_token"),
            Separators::Ampersand,
        )
    }

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn a_token_comes_from_any_source_and_the_same_token_from_several() {
        let s = sources();
        let header = headers(&[("authorization", "bearer h.h.h")]);
        assert_eq!(s.find(&header, None), Ok(Some(&b"h.h.h"[..])));
        let cookie = headers(&[
            ("authorization", "Basic dXNlcjpwdw=="),
            ("cookie", "a=1; jwt=c.c.c"),
        ]);
        assert_eq!(s.find(&cookie, None), Ok(Some(&b"c.c.c"[..])));
        assert_eq!(
            s.find(&HeaderMap::new(), Some("x=1&access_token=q.q.q")),
            Ok(Some(&b"q.q.q"[..]))
        );
        let everywhere = headers(&[("authorization", "Bearer t.t.t"), ("cookie", "jwt=t.t.t")]);
        assert_eq!(
            s.find(&everywhere, Some("access_token=t.t.t&access_token=t.t.t")),
            Ok(Some(&b"t.t.t"[..]))
        );
        assert_eq!(
            s.find(&headers(&[("authorization", "Bearer ")]), None),
            Ok(None)
        );
        assert_eq!(s.find(&HeaderMap::new(), None), Ok(None));
    }

    #[test]
    fn different_tokens_in_one_request_are_refused_wherever_they_are() {
        let s = sources();
        let two_fields = headers(&[
            ("authorization", "Bearer a.a.a"),
            ("authorization", "Bearer b.b.b"),
        ]);
        assert_eq!(s.find(&two_fields, None), Err(ConflictingCopies));
        let field_and_cookie =
            headers(&[("authorization", "Bearer a.a.a"), ("cookie", "jwt=b.b.b")]);
        assert_eq!(s.find(&field_and_cookie, None), Err(ConflictingCopies));
        let two_cookies = headers(&[("cookie", "jwt=a.a.a"), ("cookie", "x=1; jwt=b.b.b")]);
        assert_eq!(s.find(&two_cookies, None), Err(ConflictingCopies));
        assert_eq!(
            s.find(
                &HeaderMap::new(),
                Some("access_token=a.a.a&access%5Ftoken=b.b.b")
            ),
            Err(ConflictingCopies)
        );
        let field = headers(&[("authorization", "Bearer a.a.a")]);
        assert_eq!(
            s.find(&field, Some("access_token=b.b.b")),
            Err(ConflictingCopies)
        );
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_and_nothing_else_is_a_bearer_token() {
        let auth = header::AUTHORIZATION;
        let read = |value: &[u8]| {
            header_token(&auth, &HeaderValue::from_bytes(value).unwrap()).map(<[u8]>::to_vec)
        };
        for value in [
            &b"Bearer a.b.c"[..],
            b"bearer a.b.c",
            b"BEARER a.b.c",
            b"Bearer    a.b.c  ",
            b"\tBearer a.b.c\t",
        ] {
            assert_eq!(read(value).as_deref(), Some(&b"a.b.c"[..]), "{value:?}");
        }
        for value in [
            &b"Basic a.b.c"[..],
            b"Bearer",
            b"Bearer\ta.b.c",
            b"Bearera.b.c",
            b"a.b.c",
        ] {
            assert_eq!(read(value), None, "{value:?}");
        }
        // Another header carries the token itself, with or without the scheme.
        let other = HeaderName::from_static("x-token");
        let token = |value: &'static str| {
            header_token(&other, &HeaderValue::from_static(value)).map(<[u8]>::to_vec)
        };
        assert_eq!(token(" a.b.c ").as_deref(), Some(&b"a.b.c"[..]));
        assert_eq!(token("bearer a.b.c").as_deref(), Some(&b"a.b.c"[..]));
        // Bytes past ASCII are a token too (it fails verification), never "no token": a copy the
        // gateway skipped could be the one an upstream reads.
        let odd = HeaderValue::from_bytes(b"Bearer a.b.\xc3\xa9").unwrap();
        assert_eq!(header_token(&auth, &odd), Some(&b"a.b.\xc3\xa9"[..]));
    }

    #[test]
    fn another_header_carries_the_token_itself() {
        let s = TokenSources::new(
            Some(HeaderName::from_static("x-token")),
            None,
            None,
            Separators::Ampersand,
        );
        assert_eq!(
            s.find(&headers(&[("x-token", "a.b.c")]), None),
            Ok(Some(&b"a.b.c"[..]))
        );
        assert_eq!(
            s.find(&headers(&[("x-token", "Bearer a.b.c")]), None),
            Ok(Some(&b"a.b.c"[..]))
        );
    }

    #[test]
    fn hiding_removes_the_header_and_only_the_tokens_cookie() {
        let s = sources();
        let mut map = headers(&[
            ("authorization", "Bearer h.h.h"),
            ("cookie", "a=1; jwt=c.c.c"),
            ("cookie", "b=2"),
        ]);
        s.hide(&mut map);
        assert!(map.get(header::AUTHORIZATION).is_none());
        assert_eq!(map.get(header::COOKIE).unwrap(), "a=1; b=2");
        let mut only = headers(&[("cookie", "jwt=c.c.c")]);
        s.hide(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }

    #[test]
    fn a_cookie_name_with_whitespace_before_its_equals_sign_is_the_same_cookie() {
        let s = sources();
        let spaced = headers(&[("cookie", "a=1; jwt = c.c.c")]);
        assert_eq!(s.find(&spaced, None), Ok(Some(&b"c.c.c"[..])));
        let mut both = headers(&[
            ("authorization", "Bearer h.h.h"),
            ("cookie", "jwt\t=forged; a=1; jwt =forged"),
        ]);
        s.hide(&mut both);
        assert_eq!(both.get(header::COOKIE).unwrap(), "a=1");
    }

    #[test]
    fn a_twin_of_the_header_is_a_copy_of_the_token() {
        for (configured, twin) in [("x-token", "x_token"), ("x_token", "x-token")] {
            let s = TokenSources::new(
                Some(HeaderName::from_static(configured)),
                None,
                None,
                Separators::Ampersand,
            );
            let same = headers(&[(configured, "a.b.c"), (twin, "Bearer a.b.c")]);
            assert_eq!(
                s.find_and_twins(&same, None),
                (Ok(Some(&b"a.b.c"[..])), true)
            );
            let differing = headers(&[(configured, "a.b.c"), (twin, "x.y.z")]);
            assert_eq!(s.find(&differing, None), Err(ConflictingCopies));
            let alone = headers(&[(twin, "a.b.c")]);
            assert_eq!(
                s.find(&alone, None),
                Ok(Some(&b"a.b.c"[..])),
                "a twin alone"
            );
            let neither = headers(&[(configured, "a.b.c"), ("x-tokens", "x.y.z")]);
            assert_eq!(
                s.find_and_twins(&neither, None),
                (Ok(Some(&b"a.b.c"[..])), false)
            );

            let mut kept = same.clone();
            s.remove_twins(&mut kept);
            assert_eq!(kept.len(), 1);
            assert_eq!(kept.get(configured).unwrap(), "a.b.c");
            let mut hidden = same;
            s.hide(&mut hidden);
            assert!(hidden.is_empty());
        }
        let mixed = TokenSources::new(
            Some(HeaderName::from_static("x-api-token")),
            None,
            None,
            Separators::Ampersand,
        );
        let fields = headers(&[("x_api-token", "a.b.c"), ("x-api_token", "a.b.c")]);
        assert_eq!(
            mixed.find_and_twins(&fields, None),
            (Ok(Some(&b"a.b.c"[..])), true)
        );
    }

    #[test]
    fn a_cookie_name_is_read_as_upstreams_read_it() {
        let s = TokenSources::new(None, Some("jwt_token"), None, Separators::Ampersand);
        for spelling in [
            "jwt.token",
            "jwt%2Etoken",
            "jwt+token",
            "JWT_Token",
            "jwt[token",
            "jwt_token[]",
        ] {
            let cookie = format!("a=1; {spelling}=c.c.c");
            assert_eq!(
                s.find(&headers(&[("cookie", &cookie)]), None),
                Ok(Some(&b"c.c.c"[..])),
                "{spelling}"
            );
            let conflicting = format!("jwt_token=a.a.a; {spelling}=c.c.c");
            assert_eq!(
                s.find(&headers(&[("cookie", &conflicting)]), None),
                Err(ConflictingCopies),
                "{spelling}"
            );
            let mut hidden =
                headers(&[("cookie", &format!("jwt_token=c.c.c; {spelling}=c.c.c; b=2"))]);
            s.hide(&mut hidden);
            assert_eq!(hidden.get(header::COOKIE).unwrap(), "b=2", "{spelling}");
        }
        assert_eq!(
            s.find(
                &headers(&[("cookie", "jwt_tokens=c.c.c; jwt-token=d.d.d")]),
                None
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_query_token_after_a_semicolon_is_read_only_when_asked() {
        let plain = TokenSources::new(None, None, Some("access_token"), Separators::Ampersand);
        assert_eq!(
            plain.find(&HeaderMap::new(), Some("a=1;access_token=q.q.q")),
            Ok(None)
        );
        let both = TokenSources::new(
            None,
            None,
            Some("access_token"),
            Separators::AmpersandAndSemicolon,
        );
        assert_eq!(
            both.find(&HeaderMap::new(), Some("a=1;access_token=q.q.q")),
            Ok(Some(&b"q.q.q"[..]))
        );
        assert_eq!(
            both.find(
                &HeaderMap::new(),
                Some("access_token=q.q.q;access.token=r.r.r")
            ),
            Err(ConflictingCopies)
        );
    }
}
