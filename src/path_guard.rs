//! Path checks made before anything is signed or forwarded: a path segment the app names (the
//! Myinfo v4 person `sub`, or any other single segment) and the rest of a passthrough path.
//!
//! Why: a `sub` of `..` or `a%2F..%2F..%2Ftoken` would otherwise be signed into a DPoP proof
//! for another upstream URL, and a passthrough path of `/x/../../y` would leave the mount. A
//! server or gateway upstream may decode `%2F`, `%5C` or `%2E` (even twice), so the encoded
//! forms are refused as firmly as the plain ones.

use crate::error::{ProblemCode, ProxyError};
use percent_encoding::percent_decode;
use std::borrow::Cow;

/// Layers of percent-encoding unwrapped when looking for a hidden `/`, `\` or `.`; a segment
/// still changing after that many decodings is refused (no real id is encoded 4 times).
const MAX_DECODINGS: usize = 3;

/// Checks one path segment that the app names (e.g. `name` = "person `sub`"): refuses an empty
/// segment, `/`, `\`, a `.` or `..` segment, a percent-encoded (or double-encoded) slash,
/// backslash or dot, and control characters, with `400 VALIDATION_INVALID_PARAMETER`.
pub(crate) fn check_segment(name: &str, segment: &str) -> Result<(), ProxyError> {
    let problem = if segment.is_empty() {
        Some("is empty")
    } else if segment == "." || segment == ".." {
        Some("is a dot segment (`.` or `..`)")
    } else {
        hidden_problem(segment)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(refused(name, problem)),
    }
}

/// Resolves the `.` and `..` segments of a passthrough path below its mount (RFC 3986 section
/// 5.2.4), so that what is forwarded is what the upstream will act on. `rest` is the path
/// after the mount's prefix: empty or starting with `/`. Refuses a path that would climb above
/// the prefix, and any `\`, control character, or percent-encoded slash, backslash or dot.
pub(crate) fn normalise_passthrough(rest: &str) -> Result<Cow<'_, str>, ProxyError> {
    const NAME: &str = "passthrough path";
    let Some(body) = rest.strip_prefix('/') else {
        return if rest.is_empty() {
            Ok(Cow::Borrowed(rest))
        } else {
            Err(refused(NAME, "does not start with `/`"))
        };
    };
    // The common case, no dot segment: checked in place, nothing allocated.
    if !body.split('/').any(|s| s == "." || s == "..") {
        return match body.split('/').find_map(hidden_problem) {
            Some(problem) => Err(refused(NAME, problem)),
            None => Ok(Cow::Borrowed(rest)),
        };
    }
    let segments: Vec<&str> = body.split('/').collect();
    let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
    let mut changed = false;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => changed = true,
            ".." => {
                changed = true;
                if kept.pop().is_none() {
                    return Err(refused(
                        NAME,
                        "climbs above the upstream's prefix with `..`",
                    ));
                }
            }
            other => {
                if let Some(problem) = hidden_problem(other) {
                    return Err(refused(NAME, problem));
                }
                kept.push(other);
                continue;
            }
        }
        // A path ending in a dot segment names a directory: `/a/b/..` is `/a/`.
        if last {
            kept.push("");
        }
    }
    if !changed {
        return Ok(Cow::Borrowed(rest));
    }
    Ok(Cow::Owned(format!("/{}", kept.join("/"))))
}

/// What is wrong with a segment's characters, plain or behind percent-encoding; dots are
/// allowed plainly (`jwks.json`) but not encoded.
fn hidden_problem(segment: &str) -> Option<&'static str> {
    // The usual segment, printable ASCII with nothing to decode, has nothing to hide: what the
    // loop below would find on its first pass, without its copies.
    if segment
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && !matches!(b, b'%' | b'/' | b'\\'))
    {
        return None;
    }
    let mut level: Cow<'_, [u8]> = Cow::Borrowed(segment.as_bytes());
    let mut plain_dots = count_dots(&level);
    for decodings in 0..=MAX_DECODINGS {
        let encoded = decodings > 0;
        if level.contains(&b'/') {
            return Some(pick(
                encoded,
                "contains `/`",
                "contains a percent-encoded `/` (%2F)",
            ));
        }
        if level.contains(&b'\\') {
            return Some(pick(
                encoded,
                "contains `\\`",
                "contains a percent-encoded `\\` (%5C)",
            ));
        }
        if String::from_utf8_lossy(&level)
            .chars()
            .any(char::is_control)
        {
            return Some("contains a control character");
        }
        // A decoding that adds a dot uncovered an encoded one.
        let dots = count_dots(&level);
        if dots > plain_dots {
            return Some("contains a percent-encoded `.` (%2E)");
        }
        plain_dots = dots;
        let decoded: Cow<'_, [u8]> = percent_decode(&level).into();
        if decoded == level {
            return None;
        }
        level = Cow::Owned(decoded.into_owned());
    }
    Some("is percent-encoded more than 3 times")
}

fn count_dots(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'.').count()
}

fn pick(encoded: bool, plain: &'static str, hidden: &'static str) -> &'static str {
    if encoded {
        hidden
    } else {
        plain
    }
}

fn refused(name: &str, problem: &str) -> ProxyError {
    ProxyError::new(
        ProblemCode::ValidationInvalidParameter,
        format!("the {name} {problem}; send the value as one plain path segment (letters, digits and `-`, `_`, `~`; no `/`, `\\`, dot segments, encoded separators or control characters)"),
    )
}

#[cfg(test)]
mod tests;
