//! Where a request carries its token: a header, a cookie, a query parameter.

use http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::copies::{one_credential, ConflictingCopies};
use crate::query;

/// The places a token is looked for: the header, the cookie, the query parameter. A token may come
/// in several of them, but it must be the same token in each.
pub struct TokenSources {
    /// The header; `Authorization` carries `Bearer <token>` (RFC 6750 §2.1), any other header the
    /// token itself (a `Bearer ` prefix is allowed there too).
    pub header: Option<HeaderName>,
    /// The cookie's name.
    pub cookie: Option<Box<str>>,
    /// The query parameter's name.
    pub query: Option<Box<str>>,
}

impl TokenSources {
    /// The request's token: `Ok(None)` when no source carries a non-empty one, and
    /// [`ConflictingCopies`] when its sources (several field lines, cookies or parameters included)
    /// carry different ones ([`one_credential`]).
    pub fn find<'r>(
        &'r self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Result<Option<&'r str>, ConflictingCopies> {
        one_credential(
            self.in_header(headers)
                .chain(self.in_cookie(headers))
                .chain(
                    self.query
                        .as_deref()
                        .into_iter()
                        .flat_map(move |name| query::params(query, name)),
                ),
        )
    }

    fn in_header<'r>(&'r self, headers: &'r HeaderMap) -> impl Iterator<Item = &'r str> {
        self.header.iter().flat_map(move |name| {
            headers.get_all(name).iter().filter_map(move |value| {
                let value = value.to_str().ok()?.trim();
                match bearer(value) {
                    Some(token) => Some(token),
                    // Another scheme in `Authorization` (Basic, a key) is no bearer token at all.
                    None if name == header::AUTHORIZATION => None,
                    None => Some(value),
                }
            })
        })
    }

    fn in_cookie<'r>(&'r self, headers: &'r HeaderMap) -> impl Iterator<Item = &'r str> {
        self.cookie.as_deref().into_iter().flat_map(move |name| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(move |pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    // Whitespace around `=` is trimmed, as upstream parsers (Go's, for one) trim it:
                    // a `jwt =x` the gateway did not read as `jwt` must not be one the upstream reads so.
                    (key.trim_end() == name).then(|| value.trim_start().trim_matches('"'))
                })
        })
    }

    /// Removes the token's header and cookie from `headers` (the query parameter is removed when the
    /// upstream request is shaped).
    pub fn hide(&self, headers: &mut HeaderMap) {
        if let Some(name) = &self.header {
            floodgate_http1::remove_with_twins(headers, name);
        }
        let Some(name) = self.cookie.as_deref() else {
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
                    && pair.split_once('=').map_or(*pair, |(k, _)| k).trim_end() != name
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

/// The token of a `Bearer <token>` credential (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> TokenSources {
        TokenSources {
            header: Some(header::AUTHORIZATION),
            cookie: Some("jwt".into()),
            query: Some("access_token".into()),
        }
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
        assert_eq!(s.find(&header, None), Ok(Some("h.h.h")));
        let cookie = headers(&[
            ("authorization", "Basic dXNlcjpwdw=="),
            ("cookie", "a=1; jwt=c.c.c"),
        ]);
        assert_eq!(s.find(&cookie, None), Ok(Some("c.c.c")));
        assert_eq!(
            s.find(&HeaderMap::new(), Some("x=1&access_token=q.q.q")),
            Ok(Some("q.q.q"))
        );
        let everywhere = headers(&[("authorization", "Bearer t.t.t"), ("cookie", "jwt=t.t.t")]);
        assert_eq!(
            s.find(&everywhere, Some("access_token=t.t.t&access_token=t.t.t")),
            Ok(Some("t.t.t"))
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
    fn another_header_carries_the_token_itself() {
        let s = TokenSources {
            header: Some(HeaderName::from_static("x-token")),
            cookie: None,
            query: None,
        };
        assert_eq!(
            s.find(&headers(&[("x-token", "a.b.c")]), None),
            Ok(Some("a.b.c"))
        );
        assert_eq!(
            s.find(&headers(&[("x-token", "Bearer a.b.c")]), None),
            Ok(Some("a.b.c"))
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
        assert_eq!(s.find(&spaced, None), Ok(Some("c.c.c")));
        let mut both = headers(&[
            ("authorization", "Bearer h.h.h"),
            ("cookie", "jwt\t=forged; a=1; jwt =forged"),
        ]);
        s.hide(&mut both);
        assert_eq!(both.get(header::COOKIE).unwrap(), "a=1");
    }
}
