//! Reading and removing a query parameter as upstream frameworks read its name (a credential's
//! `?apikey=`, the `?_method=` override), and reading a cookie's name the same way.
//!
//! A name is matched as upstream frameworks read names, so no spelling of the credential reaches the
//! upstream unchecked or survives `hide_credentials`:
//!
//! - decoded as form data (`%XX` escapes, `+` for a space): `api%6Bey` is `apikey`;
//! - then as PHP registers variables (`main/php_variables.c`): the name ends at a NUL byte, leading
//!   spaces are dropped, ` ` and `.` are `_`, a name `base[...]` (a `[` with a `]` after it) is the
//!   array `base`, and a `[` with no `]` after it is `_` (as are ` `, `.` and `[` after it), so
//!   `api.key`, `api key`, ` api_key`, `api[key` and `api_key[]` are all `api_key`;
//! - compared ASCII-case-insensitively, as ASP.NET Core compares them.
//!
//! The configured name is read the same way. By default the query is split on `&` only; an upstream
//! that also splits on `;` (old Python `parse_qs`, Perl CGI) needs [`Separators::AmpersandAndSemicolon`].

/// What a query string is split into parameters on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Separators {
    /// `&` alone (the WHATWG URL standard, and most frameworks today).
    #[default]
    Ampersand,
    /// `&` and `;`.
    AmpersandAndSemicolon,
}

impl Separators {
    /// The separators a configuration string names: `"&"` or `"&;"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "&" => Ok(Self::Ampersand),
            "&;" => Ok(Self::AmpersandAndSemicolon),
            other => Err(format!("{other:?} is not \"&\" or \"&;\"")),
        }
    }

    fn split(self, query: &str) -> impl Iterator<Item = &str> + '_ {
        query.split(move |c| c == '&' || (c == ';' && self == Self::AmpersandAndSemicolon))
    }
}

/// A credential's parameter or cookie name, as upstreams read names.
#[derive(Debug, Clone)]
pub struct ParamName {
    /// The configured name, read as the module says and lowercased.
    read: Box<[u8]>,
    separators: Separators,
}

impl ParamName {
    /// The name `name` (taken literally, not form-decoded), in queries split on `separators`.
    pub fn new(name: &str, separators: Separators) -> Self {
        Self {
            read: read_name(name.bytes()).collect(),
            separators,
        }
    }

    /// Whether an upstream reads `name` as no name at all (empty, spaces, `[x]`): no parameter can
    /// carry it.
    pub fn is_unreadable(&self) -> bool {
        self.read.is_empty()
    }

    /// The configured credential name `name`, or the configuration error when upstreams read it as
    /// no name at all.
    pub fn configured(name: &str, separators: Separators) -> Result<Self, String> {
        let param = Self::new(name, separators);
        if param.is_unreadable() {
            return Err(format!("{name:?} is read as no name at all by upstreams"));
        }
        Ok(param)
    }

    /// Whether the raw name `raw`, as sent, is read as this name.
    pub fn matches(&self, raw: &str) -> bool {
        !self.read.is_empty()
            && read_name(FormDecoded::new(raw.as_bytes())).eq(self.read.iter().copied())
    }

    /// The raw value of the first parameter of this name in `query` (not percent-decoded).
    pub fn param<'q>(&self, query: Option<&'q str>) -> Option<&'q str> {
        self.params(query).next()
    }

    /// The raw values of every parameter of this name in `query`, in order.
    pub fn params<'q, 's>(
        &'s self,
        query: Option<&'q str>,
    ) -> impl Iterator<Item = &'q str> + use<'q, 's> {
        query
            .into_iter()
            .flat_map(|q| self.separators.split(q))
            .filter_map(move |pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                self.matches(key).then_some(value)
            })
    }

    /// `path_and_query` without any parameter of this name; `None` when it has none (nothing to
    /// change). The parameters kept keep their order and the separator before each.
    pub fn without(&self, path_and_query: &str) -> Option<String> {
        let (path, query) = path_and_query.split_once('?')?;
        let mut out = String::with_capacity(path_and_query.len());
        out.push_str(path);
        let mut removed = false;
        let mut kept_any = false;
        let mut start: usize = 0;
        for pair in self.separators.split(query) {
            // The separator before this pair, if any: the byte before its start.
            let separator = start.checked_sub(1).map(|at| &query[at..start]);
            start += pair.len() + 1;
            if self.matches(pair.split_once('=').map_or(pair, |(k, _)| k)) {
                removed = true;
                continue;
            }
            out.push_str(if kept_any {
                separator.unwrap_or("&")
            } else {
                "?"
            });
            out.push_str(pair);
            kept_any = true;
        }
        removed.then_some(out)
    }
}

/// `raw` form-decoded (`+` a space, `%XX` the byte it spells), as a framework hands a value to its
/// application.
pub fn form_decoded(raw: &str) -> Vec<u8> {
    FormDecoded::new(raw.as_bytes()).collect()
}

/// A name's bytes as PHP registers it (see the module), lowercased: cut at a NUL, leading spaces
/// dropped, ` ` and `.` as `_`, and the first `[` either ending the name (a `]` follows it) or read
/// as `_` with ` `, `.` and `[` after it read as `_` too.
fn read_name<I>(bytes: I) -> impl Iterator<Item = u8>
where
    I: Iterator<Item = u8> + Clone,
{
    let mut rest = bytes.take_while(|&b| b != 0).skip_while(|&b| b == b' ');
    let mut bracket = false;
    std::iter::from_fn(move || {
        let byte = rest.next()?;
        if byte == b'[' && !bracket {
            if rest.clone().any(|b| b == b']') {
                // The array `base[...]`: the name is `base`.
                return None;
            }
            bracket = true;
        }
        Some(match byte {
            b' ' | b'.' | b'[' => b'_',
            other => other.to_ascii_lowercase(),
        })
    })
}

/// The bytes of a form-encoded name: `+` is a space, `%` and two hex digits the byte they spell; a
/// `%` not followed by two hex digits stands for itself, as the WHATWG URL standard reads it.
#[derive(Clone)]
struct FormDecoded<'a> {
    raw: &'a [u8],
}

impl<'a> FormDecoded<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Self { raw }
    }
}

impl Iterator for FormDecoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.raw.split_first()?;
        let (byte, width) = match first {
            b'+' => (b' ', 1),
            b'%' => match (rest.first().and_then(hex), rest.get(1).and_then(hex)) {
                (Some(high), Some(low)) => (high << 4 | low, 3),
                _ => (b'%', 1),
            },
            other => (other, 1),
        };
        self.raw = &self.raw[width..];
        Some(byte)
    }
}

fn hex(digit: &u8) -> Option<u8> {
    (*digit as char).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> ParamName {
        ParamName::new(n, Separators::Ampersand)
    }

    #[test]
    fn finds_and_removes_a_parameter() {
        let apikey = name("apikey");
        assert_eq!(apikey.param(Some("a=1&apikey=k&b")), Some("k"));
        assert_eq!(apikey.param(Some("apikeyx=1")), None);
        assert_eq!(apikey.param(None), None);
        assert_eq!(apikey.without("/p?a=1&apikey=k&b=2").unwrap(), "/p?a=1&b=2");
        assert_eq!(apikey.without("/p?apikey=k").unwrap(), "/p");
        assert_eq!(apikey.without("/p?a=1&&b").as_deref(), None);
        assert_eq!(apikey.without("/p?a=1"), None);
        assert_eq!(apikey.without("/p"), None);
    }

    #[test]
    fn a_name_is_matched_as_the_upstream_decodes_it() {
        let apikey = name("apikey");
        assert_eq!(apikey.param(Some("api%6Bey=k")), Some("k"));
        assert_eq!(apikey.param(Some("%61%70%69%6b%65%79=k")), Some("k"));
        assert_eq!(name("api key").param(Some("api+key=k")), Some("k"));
        assert_eq!(name("api key").param(Some("api%20key=k")), Some("k"));
        assert_eq!(
            apikey
                .without("/p?apikey=good&api%6Bey=forged&b=2")
                .unwrap(),
            "/p?b=2"
        );
        // Not escapes: a lone `%`, a short or non-hex one, and an escape that decodes to a different name.
        assert_eq!(name("a%").param(Some("a%=1")), Some("1"));
        assert_eq!(name("a%4").param(Some("a%4=1")), Some("1"));
        assert_eq!(name("a%zz").param(Some("a%zz=1")), Some("1"));
        assert_eq!(apikey.param(Some("apike=k")), None);
        assert_eq!(apikey.param(Some("apikey=")), Some(""));
    }

    #[test]
    fn a_name_is_read_as_php_and_asp_net_read_it() {
        let api_key = name("api_key");
        for spelling in [
            "api_key",
            "api.key",
            "api+key",
            "api%20key",
            "api%2Ekey",
            "api[key",
            "+api_key",
            "%20%20api_key",
            "api_key[]",
            "api_key[0]",
            "api_key[a][b]",
            "api_key[x]tail",
            "API_KEY",
            "Api.Key",
            "api_key%00",
            "api_key%00anything",
        ] {
            assert_eq!(
                api_key.param(Some(&format!("{spelling}=k"))),
                Some("k"),
                "{spelling}"
            );
        }
        for other in [
            "api_keys",
            "apikey",
            "api-key",
            "api_key_",
            "[api_key]",
            "api]key",
            "%00api_key",
            "api__key",
            "_api_key",
        ] {
            assert_eq!(api_key.param(Some(&format!("{other}=k"))), None, "{other}");
        }
        // After a `[` with no `]`, spaces, dots and brackets are `_` too.
        assert!(name("a_b_c").matches("a[b.c"));
        assert!(name("a_b_c").matches("a[b[c"));
        // The configured name is read the same way.
        assert!(name("api.key").matches("api_key"));
        assert!(name("Api Key").matches("api.KEY"));
        assert!(name("[x]").is_unreadable() && name("   ").is_unreadable());
        assert!(!name("[x]").matches("[x]"));
    }

    #[test]
    fn every_value_of_a_repeated_parameter_is_listed() {
        let apikey = name("apikey");
        let all: Vec<&str> = apikey
            .params(Some("apikey=a&b=1&api%6Bey=c&apikey"))
            .collect();
        assert_eq!(all, ["a", "c", ""]);
        assert_eq!(apikey.params(None).count(), 0);
    }

    #[test]
    fn semicolons_separate_parameters_only_when_asked() {
        let plain = name("apikey");
        assert_eq!(plain.param(Some("a=1;apikey=k")), None);
        assert_eq!(plain.without("/p?a=1;apikey=k"), None);
        let both = ParamName::new("apikey", Separators::AmpersandAndSemicolon);
        let all: Vec<&str> = both.params(Some("a=1;apikey=k&apikey=j;b")).collect();
        assert_eq!(all, ["k", "j"]);
        assert_eq!(
            both.without("/p?a=1;apikey=k&b=2;c").unwrap(),
            "/p?a=1&b=2;c"
        );
        assert_eq!(both.without("/p?apikey=k;b=2&c").unwrap(), "/p?b=2&c");
        assert_eq!(both.without("/p?apikey=k;APIKEY=j").unwrap(), "/p");
        assert_eq!(Separators::parse("&"), Ok(Separators::Ampersand));
        assert_eq!(
            Separators::parse("&;"),
            Ok(Separators::AmpersandAndSemicolon)
        );
        for bad in [";", ";&", "", "&&", " &"] {
            assert!(Separators::parse(bad).is_err(), "{bad:?}");
        }
    }
}
