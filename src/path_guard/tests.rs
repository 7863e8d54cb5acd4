//! The path checks against the odd paths an attacker would try, and the ordinary values.

use super::*;

fn refusal(segment: &str) -> String {
    let err = check_segment("person `sub`", segment).expect_err(segment);
    assert_eq!(
        err.code,
        ProblemCode::ValidationInvalidParameter,
        "{segment}"
    );
    assert_eq!(err.code.status(), http::StatusCode::BAD_REQUEST);
    assert!(
        err.detail.starts_with("the person `sub` "),
        "{}",
        err.detail
    );
    err.detail
}

#[test]
fn ordinary_subs_are_accepted() {
    for sub in [
        "S1234567A",
        "T0123456Z",
        "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "user-1",
        "a.b",
        "...",
        "name~with_tilde",
        "caf%C3%A9",
    ] {
        assert!(check_segment("person `sub`", sub).is_ok(), "{sub}");
    }
}

#[test]
fn dot_segments_are_refused_plain_and_encoded() {
    assert!(refusal("..").contains("dot segment"));
    assert!(refusal(".").contains("dot segment"));
    for encoded in ["%2e%2e", "%2E%2E", "%2e.", ".%2E", "%2e"] {
        assert!(
            refusal(encoded).contains("percent-encoded `.`"),
            "{encoded}"
        );
    }
}

#[test]
fn double_encoded_dots_and_slashes_are_refused() {
    assert!(refusal("%252e%252e").contains("percent-encoded `.`"));
    assert!(refusal("a%252Fb").contains("percent-encoded `/`"));
    assert!(refusal("a%25252fb").contains("percent-encoded `/`"));
    assert!(refusal("%2525252e").contains("more than 3 times"));
}

#[test]
fn slashes_and_backslashes_are_refused_plain_and_encoded() {
    assert!(refusal("a/b").contains("contains `/`"));
    assert!(refusal("a\\b").contains("contains `\\`"));
    let detail = refusal("a%2F..%2F..%2Ftoken");
    assert!(detail.contains("percent-encoded `/` (%2F)"), "{detail}");
    assert!(refusal("a%2fb").contains("percent-encoded `/`"));
    assert!(refusal("a%5cb").contains("percent-encoded `\\`"));
    assert!(refusal("..%5C..%5Ctoken").contains("percent-encoded `\\`"));
}

#[test]
fn control_characters_and_empty_values_are_refused() {
    for bad in [
        "a\u{0}b",
        "a\nb",
        "a\tb",
        "a\u{7f}",
        "%00",
        "a%0d%0aX-Injected:%201",
        "%c2%85",
    ] {
        assert!(refusal(bad).contains("control character"), "{bad:?}");
    }
    assert!(refusal("").contains("is empty"));
}

#[test]
fn the_detail_never_echoes_the_value() {
    let detail = refusal("secret%2F..%2Fvalue");
    assert!(!detail.contains("secret"), "{detail}");
}

fn normalised(rest: &str) -> String {
    normalise_passthrough(rest)
        .unwrap_or_else(|e| panic!("{rest}: {e}"))
        .into_owned()
}

fn passthrough_refusal(rest: &str) -> String {
    let err = normalise_passthrough(rest).expect_err(rest);
    assert_eq!(err.code, ProblemCode::ValidationInvalidParameter, "{rest}");
    err.detail
}

#[test]
fn passthrough_paths_without_dot_segments_are_unchanged() {
    for rest in [
        "",
        "/",
        "/com/v4/jwks",
        "/a/b/",
        "/a//b",
        "/jwks.json",
        "/a/.../b",
    ] {
        assert!(
            matches!(normalise_passthrough(rest), Ok(Cow::Borrowed(p)) if p == rest),
            "{rest}"
        );
    }
}

#[test]
fn passthrough_dot_segments_below_the_prefix_are_resolved() {
    assert_eq!(normalised("/x/../y"), "/y");
    assert_eq!(normalised("/a/./b"), "/a/b");
    assert_eq!(normalised("/a/b/.."), "/a/");
    assert_eq!(normalised("/a/b/."), "/a/b/");
    assert_eq!(normalised("/x/.."), "/");
    assert_eq!(normalised("/a//../b"), "/a/b");
    assert_eq!(normalised("/a/b/c/../../d"), "/a/d");
}

#[test]
fn passthrough_paths_that_climb_above_the_prefix_are_refused() {
    for rest in [
        "/..",
        "/x/../../y",
        "/../etc/passwd",
        "/a/./../../b",
        "/./..",
    ] {
        assert!(
            passthrough_refusal(rest).contains("climbs above the upstream's prefix"),
            "{rest}"
        );
    }
}

#[test]
fn passthrough_refuses_encoded_separators_dots_and_control_characters() {
    assert!(passthrough_refusal("/x/%2e%2e/%2e%2e/y").contains("percent-encoded `.`"));
    assert!(passthrough_refusal("/a%2F..%2F..%2Ftoken").contains("percent-encoded `/`"));
    assert!(passthrough_refusal("/a/%252e%252e/b").contains("percent-encoded `.`"));
    assert!(passthrough_refusal("/a\\..\\b").contains("`\\`"));
    assert!(passthrough_refusal("/a/%5c/b").contains("percent-encoded `\\`"));
    assert!(passthrough_refusal("/a/%0a").contains("control character"));
    assert!(passthrough_refusal("no-slash").contains("does not start with `/`"));
}
