//! The time claims (`exp`, `nbf`) read exactly as jsonwebtoken's validator reads them.
//!
//! RFC 7519 §2 lets a NumericDate be fractional, and the validator accepts `"exp": 1700000000.4`,
//! rounding it. The cache keeps a token only for the time the validator would accept it, so it must
//! read the claim the same way: a reading that found no `exp` in `1700000000.4` would keep an expired
//! token forever.

use serde_json::{Map, Value};

/// A time claim as the validator reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericDate {
    /// The claim is not there.
    Absent,
    /// Unix seconds.
    At(u64),
    /// There, but not a date the validator reads (the validator refuses such a token).
    Malformed,
}

/// The claim `name` of `claims`, coerced as jsonwebtoken 12 coerces it (`validation.rs`,
/// `numeric_type`): an unsigned integer as it is; a finite, non-negative float below 2^64 rounded to
/// the nearest second; anything else (a negative integer, a string, `null`) malformed. serde_json
/// reads an integer too large for `u64` as a float, here as there.
pub fn read(claims: &Map<String, Value>, name: &str) -> NumericDate {
    let Some(value) = claims.get(name) else {
        return NumericDate::Absent;
    };
    let Value::Number(number) = value else {
        return NumericDate::Malformed;
    };
    if let Some(seconds) = number.as_u64() {
        return NumericDate::At(seconds);
    }
    match number.as_f64() {
        // `as` saturates, and the bound keeps it from having to.
        Some(f) if number.is_f64() && f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
            NumericDate::At(f.round() as u64)
        }
        _ => NumericDate::Malformed,
    }
}

/// The seconds a verified token stays valid for, its leeway included, as the cache rechecks them on
/// every hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// The first Unix second the token is valid in (`nbf` less the leeway); `None`: from the start.
    pub not_before: Option<u64>,
    /// The last Unix second the token is valid in (`exp` plus the leeway); `None`: never expires.
    pub expires: Option<u64>,
}

impl Lifetime {
    /// The lifetime of `claims`, read as the validator reads them; `None` when a time claim is
    /// malformed.
    pub fn of(claims: &Map<String, Value>, leeway: u64) -> Option<Self> {
        let bound = |name| match read(claims, name) {
            NumericDate::Absent => Some(None),
            NumericDate::At(seconds) => Some(Some(seconds)),
            NumericDate::Malformed => None,
        };
        Some(Self {
            // The validator refuses `nbf > now + leeway` and `exp < now - leeway`.
            not_before: bound("nbf")?.map(|nbf: u64| nbf.saturating_sub(leeway)),
            expires: bound("exp")?.map(|exp: u64| exp.saturating_add(leeway)),
        })
    }

    /// Whether the token is valid at Unix second `now`.
    pub fn holds(&self, now: u64) -> bool {
        self.not_before.is_none_or(|first| now >= first)
            && self.expires.is_none_or(|last| now <= last)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claim(json: &str) -> NumericDate {
        let claims: Map<String, Value> = serde_json::from_str(json).unwrap();
        read(&claims, "exp")
    }

    #[test]
    fn dates_are_coerced_as_the_validator_coerces_them() {
        assert_eq!(
            claim(r#"{"exp": 1700000000}"#),
            NumericDate::At(1_700_000_000)
        );
        assert_eq!(
            claim(r#"{"exp": 1700000000.4}"#),
            NumericDate::At(1_700_000_000)
        );
        assert_eq!(
            claim(r#"{"exp": 1700000000.5}"#),
            NumericDate::At(1_700_000_001)
        );
        assert_eq!(claim(r#"{"exp": 1.7e9}"#), NumericDate::At(1_700_000_000));
        assert_eq!(claim(r#"{"exp": 0.4}"#), NumericDate::At(0));
        assert_eq!(
            claim(r#"{"exp": -0}"#),
            NumericDate::At(0),
            "serde_json reads -0 as a float"
        );
        assert_eq!(
            claim(r#"{"exp": 18446744073709551615}"#),
            NumericDate::At(u64::MAX)
        );
        assert_eq!(claim(r#"{}"#), NumericDate::Absent);
        for malformed in [
            r#"{"exp": 18446744073709551616}"#,
            r#"{"exp": 1e300}"#,
            r#"{"exp": -1}"#,
            r#"{"exp": -0.5}"#,
            r#"{"exp": "1700000000"}"#,
            r#"{"exp": null}"#,
            r#"{"exp": [1]}"#,
            r#"{"exp": true}"#,
        ] {
            assert_eq!(claim(malformed), NumericDate::Malformed, "{malformed}");
        }
    }

    #[test]
    fn a_lifetime_holds_between_nbf_and_exp_with_the_leeway() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        let both = Lifetime::of(&claims(json!({"nbf": 100, "exp": 200.4})), 5).unwrap();
        assert_eq!((both.not_before, both.expires), (Some(95), Some(205)));
        assert!(!both.holds(94) && both.holds(95) && both.holds(205) && !both.holds(206));
        let open = Lifetime::of(&claims(json!({"nbf": 100.6})), 0).unwrap();
        assert!(
            !open.holds(100) && open.holds(101) && open.holds(u64::MAX),
            "no exp: never expires"
        );
        let early = Lifetime::of(&claims(json!({"nbf": 3})), 10).unwrap();
        assert_eq!(early.not_before, Some(0));
        assert_eq!(Lifetime::of(&claims(json!({"exp": "soon"})), 0), None);
    }
}
