//! The normaliser's cases, and a property test over random and mutated paths.

use std::borrow::Cow;

use floodgate_config::{EscapedSlashes, Semicolons};

use super::{needs_work, normalize, rewrite, PathError, PathRules};

fn rules(escaped_slashes: EscapedSlashes) -> PathRules {
    PathRules {
        escaped_slashes,
        ..PathRules::default()
    }
}

fn normal(path: &str) -> Result<String, PathError> {
    normalize(path, PathRules::default()).map(Cow::into_owned)
}

#[test]
fn normal_paths_are_borrowed() {
    for path in [
        "/",
        "/app/users",
        "/app/users/",
        "/.well-known/acme",
        "/a/.b/..c/c..",
        "/a%20b/%C3%A9",
        "*",
    ] {
        assert!(
            matches!(normalize(path, PathRules::default()), Ok(Cow::Borrowed(p)) if p == path),
            "{path}"
        );
    }
}

#[test]
fn unreserved_escapes_are_decoded_and_others_uppercased() {
    assert_eq!(
        normal("/app/%69nternal/secret").unwrap(),
        "/app/internal/secret"
    );
    assert_eq!(normal("/app/ok%7Efile").unwrap(), "/app/ok~file");
    assert_eq!(normal("/%41%5a%30%2D%5f%2e").unwrap(), "/AZ0-_.");
    assert_eq!(normal("/a%20b/%c3%a9").unwrap(), "/a%20b/%C3%A9");
    // An encoded `%` stays encoded: `%2569` is the three characters `%69`, not `i`.
    assert_eq!(normal("/%2569").unwrap(), "/%2569");
}

#[test]
fn repeated_slashes_are_merged_when_asked() {
    assert_eq!(normal("//app///internal//x//").unwrap(), "/app/internal/x/");
    assert_eq!(normal("//").unwrap(), "/");
    let keep = PathRules {
        merge_slashes: false,
        ..PathRules::default()
    };
    assert_eq!(normalize("/a//b", keep).unwrap(), "/a//b");
    assert_eq!(normalize("/a//../b", keep).unwrap(), "/a/b");
}

#[test]
fn dot_segments_are_resolved_in_every_spelling() {
    for (path, expected) in [
        ("/app/./internal/x", "/app/internal/x"),
        ("/app/foo/../internal/x", "/app/internal/x"),
        ("/app/%2e%2e/app/internal/x", "/app/internal/x"),
        ("/app/x/%2E%2e/internal", "/app/internal"),
        ("/app/x/.%2e/internal", "/app/internal"),
        ("/app/x/%2e./internal", "/app/internal"),
        ("/app/%2e/internal", "/app/internal"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/..", "/"),
        ("/.", "/"),
        ("/a/.../b", "/a/.../b"),
        ("/a/%2e%2e%2e/b", "/a/.../b"),
        ("/a/%2e%2ex/b", "/a/..x/b"),
    ] {
        assert_eq!(normal(path).unwrap(), expected, "{path}");
    }
}

#[test]
fn climbing_above_the_root_is_refused() {
    for path in ["/..", "/../a", "/a/../..", "/a/%2e%2e/%2E%2E/b", "//../a"] {
        assert_eq!(normal(path), Err(PathError::AboveRoot), "{path}");
    }
}

#[test]
fn malformed_escapes_and_control_bytes_are_refused() {
    for path in ["/a%zz", "/a%4", "/a%", "/%g0/b", "/ok/%2"] {
        assert_eq!(normal(path), Err(PathError::MalformedEscape), "{path}");
    }
    for path in ["/a\0b", "/a\x1fb", "/a\x7f", "/a%00b", "/a/%41\tb"] {
        assert_eq!(normal(path), Err(PathError::ControlByte), "{path:?}");
    }
}

#[test]
fn encoded_slashes_follow_the_listener() {
    for path in [
        "/app/internal%2fsecret",
        "/app/internal%2Fsecret",
        "/a%5cb",
        "/app/internal\\secret",
    ] {
        assert_eq!(normal(path), Err(PathError::EncodedSlash), "{path}");
    }
    let keep = rules(EscapedSlashes::Keep);
    assert_eq!(
        normalize("/app/internal%2fsecret", keep).unwrap(),
        "/app/internal%2Fsecret"
    );
    assert!(matches!(
        normalize("/a%2Fb%5C", keep),
        Ok(Cow::Borrowed("/a%2Fb%5C"))
    ));
    assert_eq!(normalize("/a/..%2f..%2fb", keep).unwrap(), "/a/..%2F..%2Fb");
    assert!(matches!(
        normalize("/a\\b", keep),
        Ok(Cow::Borrowed("/a\\b"))
    ));
    let decode = rules(EscapedSlashes::Decode);
    assert_eq!(
        normalize("/app/internal\\secret", decode).unwrap(),
        "/app/internal/secret"
    );
    assert_eq!(
        normalize("/app/internal%2fsecret", decode).unwrap(),
        "/app/internal/secret"
    );
    assert_eq!(normalize("/a%2F%2f%5Cb", decode).unwrap(), "/a/b");
    assert_eq!(normalize("/a/b%2F..%2Fc", decode).unwrap(), "/a/c");
    assert_eq!(normalize("/a/b%2F..%2F..%2Fc", decode).unwrap(), "/c");
    assert_eq!(
        normalize("/a%2F..%2F..%2Fc", decode),
        Err(PathError::AboveRoot)
    );
}

fn with_semicolons(semicolons: Semicolons) -> PathRules {
    PathRules {
        semicolons,
        ..PathRules::default()
    }
}

/// The spellings servlet containers serve as `/admin/secret`, and their neighbours.
const PARAMETER_PATHS: [&str; 9] = [
    "/admin;x/secret",
    "/admin;/secret",
    "/public/..;/admin/secret",
    "/admin;jsessionid=1/secret",
    "/admin/secret;x",
    "/admin;x",
    "/admin/.;x/secret",
    "/a;b;c/d;e=%2F/secret",
    "/admin%3Bx/secret",
];

#[test]
fn semicolons_are_refused_by_default_literal_or_encoded() {
    for path in PARAMETER_PATHS.into_iter().chain(["/a%3b", "/;", "/%3B/x"]) {
        assert_eq!(normal(path), Err(PathError::Semicolon), "{path}");
    }
    // The query is not the path.
    assert_eq!(normal("/admin/secret").unwrap(), "/admin/secret");
}

#[test]
fn stripped_parameters_end_at_their_segment_before_dots_are_resolved() {
    let strip = with_semicolons(Semicolons::Strip);
    for (path, expected) in [
        ("/admin;x/secret", "/admin/secret"),
        ("/admin;/secret", "/admin/secret"),
        ("/public/..;/admin/secret", "/admin/secret"),
        ("/admin;jsessionid=1/secret", "/admin/secret"),
        ("/admin/secret;x", "/admin/secret"),
        ("/admin;x", "/admin"),
        ("/admin/.;x/secret", "/admin/secret"),
        ("/a;b;c/d;e=%2F/secret", "/a/d/secret"),
        ("/a/;x/b", "/a/b"),
        // `%3B` inside a stripped parameter goes with it.
        ("/a;x%3By/b", "/a/b"),
    ] {
        assert_eq!(normalize(path, strip).unwrap(), expected, "{path}");
    }
    assert_eq!(
        normalize("/..;/admin/secret", strip),
        Err(PathError::AboveRoot)
    );
    assert_eq!(
        normalize("/a;%zz/b", strip),
        Err(PathError::MalformedEscape)
    );
    assert_eq!(normalize("/a;%00/b", strip), Err(PathError::ControlByte));
    // `%3B` left in the path is refused: an upstream that decodes before it strips would read
    // `/public/..%3B/admin` as `/admin`.
    for path in ["/admin%3bx/secret", "/public/..%3B/admin", "/a%3B;x/b"] {
        assert_eq!(normalize(path, strip), Err(PathError::Semicolon), "{path}");
    }
}

#[test]
fn kept_semicolons_are_ordinary_characters() {
    let keep = with_semicolons(Semicolons::Keep);
    for path in PARAMETER_PATHS.into_iter().filter(|p| !p.contains("%2F")) {
        assert!(
            matches!(normalize(path, keep), Ok(Cow::Borrowed(p)) if p == path),
            "{path}"
        );
    }
    assert_eq!(normalize("/a;x/../b;y", keep).unwrap(), "/b;y");
}

#[test]
fn non_ascii_bytes_pass_through() {
    assert_eq!(normal("/caf\u{e9}//%7e").unwrap(), "/caf\u{e9}/~");
}

/// A seed path with one to three bytes inserted, replaced or removed.
fn mutated(random: &mut fastrand::Rng, seed: &str, alphabet: &[u8]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..random.usize(1..=3) {
        let at = random.usize(1..=bytes.len());
        let byte = alphabet[random.usize(..alphabet.len())];
        match random.u8(0..3) {
            0 => bytes.insert(at, byte),
            1 if at < bytes.len() => bytes[at] = byte,
            _ if at < bytes.len() => drop(bytes.remove(at)),
            _ => bytes.push(byte),
        }
    }
    // Only ASCII went in, and only whole ASCII bytes came out.
    String::from_utf8(bytes).unwrap_or_default()
}

/// Whatever the input, the output is a fixed point with none of the spellings routing must not see:
/// random paths over the bytes the rules look at, and seeded mutations of the parameter spellings.
#[test]
fn output_is_normal_for_any_input() {
    const ALPHABET: &[u8] = b"//..%%2eEfF5cC7a0zZ~;;3bB";
    let mut random = fastrand::Rng::with_seed(7);
    for escaped_slashes in [
        EscapedSlashes::Refuse,
        EscapedSlashes::Keep,
        EscapedSlashes::Decode,
    ] {
        for (merge_slashes, semicolons) in [
            (true, Semicolons::Refuse),
            (false, Semicolons::Refuse),
            (true, Semicolons::Strip),
            (false, Semicolons::Strip),
            (true, Semicolons::Keep),
        ] {
            let rules = PathRules {
                merge_slashes,
                escaped_slashes,
                semicolons,
                forward_normalized: true,
            };
            for round in 0..10_000 {
                let path = if round % 2 == 0 {
                    let seed = PARAMETER_PATHS[random.usize(..PARAMETER_PATHS.len())];
                    mutated(&mut random, seed, ALPHABET)
                } else {
                    let len = random.usize(0..24);
                    let mut path = String::from("/");
                    path.extend(
                        (0..len).map(|_| char::from(ALPHABET[random.usize(..ALPHABET.len())])),
                    );
                    path
                };
                // The fast scan and the full rewrite agree: a path the scan passes is unchanged
                // by the rewrite, and a normalised path always passes the scan (no allocation).
                let slow = rewrite(path.as_bytes(), rules);
                match needs_work(path.as_bytes(), rules) {
                    Ok(false) => assert_eq!(slow.as_deref(), Ok(path.as_bytes()), "{path}"),
                    // The scan stops at the first change; the rewrite may still refuse later bytes.
                    Ok(true) => {}
                    // The same verdict (every error is a 400); stripping checks what it removes
                    // before the rest, so the first error named may differ.
                    Err(_) => assert!(slow.is_err(), "{path}"),
                }
                let result = normalize(&path, rules);
                let parameters = path.contains(';') || path.to_ascii_lowercase().contains("%3b");
                if semicolons == Semicolons::Refuse && parameters {
                    assert!(result.is_err(), "{path} -> {result:?}");
                }
                // No rule but `keep` lets an encoded `;` through.
                if let (Semicolons::Strip, Ok(out)) = (semicolons, &result) {
                    assert!(!out.to_ascii_lowercase().contains("%3b"), "{path} -> {out}");
                }
                let Ok(out) = result else {
                    continue;
                };
                assert!(
                    semicolons != Semicolons::Strip || !out.contains(';'),
                    "{path} -> {out}"
                );
                assert_eq!(
                    needs_work(out.as_bytes(), rules),
                    Ok(false),
                    "{path} -> {out}"
                );
                assert!(out.starts_with('/'), "{path} -> {out}");
                assert_eq!(normalize(&out, rules).as_deref(), Ok(&*out), "{path}");
                assert!(
                    !out.split('/').any(|s| s == "." || s == ".."),
                    "{path} -> {out}"
                );
                assert!(!merge_slashes || !out.contains("//"), "{path} -> {out}");
                assert!(
                    !out.contains("%2e") && !out.contains("%2E"),
                    "{path} -> {out}"
                );
            }
        }
    }
}
