//! Istio's path normalization (MeshConfig `pathNormalization`), done once
//! when a request arrives, so that routing, authorization, telemetry and
//! the application all see the same path. Without it a policy that allows
//! `/public/*` lets `/public/%2e%2e/secret` through to an application that
//! resolves dot segments itself.
//!
//! `BASE` follows the path canonicalization Envoy takes from Chromium (what
//! Istio configures as `normalize_path`): dot segments are resolved (`.`
//! and `%2e` alike, never above the root), percent-encoded unreserved
//! characters are decoded, other escapes are kept as written, characters
//! that may not appear in a path are percent-encoded, a backslash becomes a
//! slash, and a NUL (raw or `%00`) makes the request invalid. Runs of
//! slashes are kept. `MERGE_SLASHES` then merges them;
//! `DECODE_AND_MERGE_SLASHES` first decodes `%2F` and `%5C`. The query is
//! never touched.

use std::borrow::Cow;

use weft_model::PathNormalization;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path holds a NUL character (%00)")]
    Nul,
    #[error("the normalized request path is not a valid URI path")]
    Unparsable,
}

/// `path` (without its query) normalized by `mode`; borrowed when nothing
/// changes, which is the common case and allocates nothing.
pub fn normalize(path: &str, mode: PathNormalization) -> Result<Cow<'_, str>, PathError> {
    if mode == PathNormalization::None || !path.starts_with('/') {
        return Ok(Cow::Borrowed(path));
    }
    let merge = mode != PathNormalization::Base;
    if !needs_work(path.as_bytes(), merge) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded;
    let input = if mode == PathNormalization::DecodeAndMergeSlashes {
        decoded = decode_slashes(path.as_bytes());
        &decoded[..]
    } else {
        path.as_bytes()
    };
    let mut out = canonicalize(input)?;
    if merge {
        out.dedup_by(|b, a| *a == b'/' && *b == b'/');
    }
    // Every byte written is ASCII: whatever was not is percent-encoded.
    let out = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    if out == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(out))
    }
}

/// Whether `path` has anything normalization could change: an escape, a
/// backslash, a character to encode, a dot right after a slash, or (when
/// merging) two slashes in a row.
fn needs_work(path: &[u8], merge: bool) -> bool {
    let mut prev = 0u8;
    for &b in path {
        let special = match b {
            b'%' | b'\\' => true,
            b'.' => prev == b'/',
            b'/' => merge && prev == b'/',
            _ => escaped(b) || b == 0,
        };
        if special {
            return true;
        }
        prev = b;
    }
    false
}

/// Characters a canonical path carries percent-encoded.
fn escaped(b: u8) -> bool {
    matches!(
        b,
        0x01..=0x20 | b'"' | b'#' | b'<' | b'>' | b'?' | b'^' | b'`' | b'{' | b'|' | b'}' | 0x7f..
    )
}

/// RFC 3986's unreserved characters but the dot, which is handled as a
/// path segment: an escape of one of these is decoded.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte `%HH` at `at` stands for, if it is a valid escape.
fn escape_at(s: &[u8], at: usize) -> Option<u8> {
    if s.get(at) != Some(&b'%') {
        return None;
    }
    Some(hex(*s.get(at + 1)?)? << 4 | hex(*s.get(at + 2)?)?)
}

/// How many input bytes the dot at `at` takes: `.` is one, `%2e` three.
fn dot_at(s: &[u8], at: usize) -> usize {
    match s.get(at) {
        Some(b'.') => 1,
        Some(b'%') if escape_at(s, at) == Some(b'.') => 3,
        _ => 0,
    }
}

fn slash(b: Option<&u8>) -> bool {
    matches!(b, Some(b'/' | b'\\'))
}

/// What a dot that follows a slash means.
enum Dot {
    /// Part of a name (`/.well-known`).
    Name,
    /// `.`: this directory; the input bytes after the dot it consumes.
    Here(usize),
    /// `..`: the parent directory, likewise.
    Up(usize),
}

fn classify(s: &[u8], after: usize) -> Dot {
    if after == s.len() {
        return Dot::Here(0);
    }
    if slash(s.get(after)) {
        return Dot::Here(1);
    }
    let second = dot_at(s, after);
    if second > 0 {
        let end = after + second;
        if end == s.len() {
            return Dot::Up(second);
        }
        if slash(s.get(end)) {
            return Dot::Up(second + 1);
        }
    }
    Dot::Name
}

/// Removes the last segment of `out`, which ends with a slash; never
/// above the root.
fn up(out: &mut Vec<u8>) {
    let last = out.len() - 1;
    if last == 0 {
        return;
    }
    let prev = out[..last].iter().rposition(|b| *b == b'/').unwrap_or(0);
    out.truncate(prev + 1);
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
}

/// The path canonicalization of `BASE`.
fn canonicalize(s: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(s.len() + 8);
    if !slash(s.first()) {
        out.push(b'/');
    }
    // Where the output holds a `%` that did not start a valid escape: a
    // decoded character just after it could complete one (`%%30%30`
    // would read as `%00` the next time the path is decoded).
    let mut loose_percent: Option<usize> = None;
    let mut i = 0;
    while i < s.len() {
        let dot = dot_at(s, i);
        if dot > 0 {
            if out.last() == Some(&b'/') {
                match classify(s, i + dot) {
                    Dot::Name => out.push(b'.'),
                    Dot::Here(n) => i += n,
                    Dot::Up(n) => {
                        up(&mut out);
                        if loose_percent.is_some_and(|p| p >= out.len()) {
                            loose_percent = None;
                        }
                        i += n;
                    }
                }
            } else {
                out.push(b'.');
            }
            i += dot;
            continue;
        }
        match s[i] {
            b'\\' => out.push(b'/'),
            b'%' => match escape_at(s, i) {
                Some(0) => return Err(PathError::Nul),
                Some(c) if unreserved(c) => {
                    out.push(c);
                    i += 2;
                    if let Some(p) = loose_percent {
                        guard_nested_escape(&mut out, p, s.get(i + 1).copied());
                    }
                }
                Some(_) => {
                    out.extend_from_slice(&s[i..i + 3]);
                    i += 2;
                }
                None => {
                    loose_percent = Some(out.len());
                    out.push(b'%');
                }
            },
            0 => return Err(PathError::Nul),
            b if escaped(b) => push_escaped(&mut out, b),
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// After a decode that put a character right behind a loose `%` at `p`:
/// if the `%` now starts a valid escape (with the next input byte, when
/// only one character follows it), it is written as `%25` instead.
fn guard_nested_escape(out: &mut Vec<u8>, p: usize, next: Option<u8>) {
    // A `..` since may have cut the output back past the `%`.
    if out.get(p) != Some(&b'%') {
        return;
    }
    let tail = &out[p + 1..];
    let pair = match (tail, next) {
        ([a, b], _) => (*a, *b),
        ([a], Some(n)) if n.is_ascii() => (*a, n),
        _ => return,
    };
    if hex(pair.0).is_some() && hex(pair.1).is_some() {
        out.splice(p + 1..p + 1, *b"25");
    }
}

/// `DECODE_AND_MERGE_SLASHES`'s first step: `%2F` to `/`, `%5C` to `\`.
fn decode_slashes(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match escape_at(s, i) {
            Some(c @ (b'/' | b'\\')) => {
                out.push(c);
                i += 3;
            }
            _ => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{normalize, PathError};
    use weft_model::PathNormalization::{self, *};

    fn n(path: &str, mode: PathNormalization) -> String {
        normalize(path, mode).expect("normalizes").into_owned()
    }

    #[test]
    fn dot_segments_resolve_however_they_are_written() {
        for p in [
            "/public/../secret.txt",
            "/public/%2e%2e/secret.txt",
            "/public/%2E%2E/secret.txt",
            "/public/.%2e/secret.txt",
            "/public/%2e./secret.txt",
            "/public/./../secret.txt",
            "/public/..\\secret.txt",
            "/public\\..\\secret.txt",
            "/../../secret.txt",
            "/public/x/../../secret.txt",
            "/./secret.txt",
        ] {
            assert_eq!(n(p, Base), "/secret.txt", "{p}");
        }
        assert_eq!(n("/a/b/..", Base), "/a/");
        assert_eq!(n("/a/b/.", Base), "/a/b/");
        assert_eq!(n("/a/b/%2e", Base), "/a/b/");
        assert_eq!(n("/..", Base), "/");
    }

    #[test]
    fn dots_inside_names_stay() {
        for p in [
            "/a/.well-known",
            "/a/..b",
            "/a/b..",
            "/a/...",
            "/a.b/c",
            "/v1.2/x",
        ] {
            assert_eq!(n(p, Base), p);
        }
        // A trailing dot on a name is part of the name.
        assert_eq!(n("/secret.txt.", Base), "/secret.txt.");
        assert_eq!(n("/a/%2ehidden", Base), "/a/.hidden");
    }

    #[test]
    fn unreserved_escapes_decode_and_others_stay_as_written() {
        assert_eq!(n("/%41%62%7e%5f%2D", Base), "/Ab~_-");
        assert_eq!(n("/a%2Fb", Base), "/a%2Fb");
        assert_eq!(n("/a%2fb", Base), "/a%2fb");
        assert_eq!(n("/a%20b", Base), "/a%20b");
        assert_eq!(n("/a%zzb%", Base), "/a%zzb%");
        assert_eq!(n("/caf%C3%A9", Base), "/caf%C3%A9");
    }

    #[test]
    fn characters_that_need_it_are_encoded() {
        assert_eq!(n("/a b\"<>^`{|}", Base), "/a%20b%22%3C%3E%5E%60%7B%7C%7D");
        assert_eq!(n("/é", Base), "/%C3%A9");
    }

    #[test]
    fn a_nul_is_refused() {
        assert_eq!(normalize("/a%00b", Base), Err(PathError::Nul));
        assert_eq!(normalize("/a\0b", Base), Err(PathError::Nul));
        // Unless normalization is off, as Istio's NONE.
        assert_eq!(n("/a%00b", None), "/a%00b");
    }

    #[test]
    fn a_decoded_digit_never_completes_an_escape() {
        // `%%30%30` decoded naively reads `%00`.
        assert_eq!(n("/%%30%30", Base), "/%2500");
        assert_eq!(n("/%%300", Base), "/%2500");
        assert_eq!(n("/%4%31", Base), "/%2541");
    }

    /// Found by the fuzzer: a loose `%` cut away by a later `..`, then a
    /// decoded character, indexed past the end of the output.
    #[test]
    fn a_loose_percent_removed_by_dot_dot_is_forgotten() {
        for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
            for p in ["//3%3%N3-N~\\..%2F..%32", "///3%3%N3-N~\\..%2F..%32"] {
                let out = n(p, mode);
                assert_eq!(n(&out, mode), out, "{p} under {mode:?}");
            }
        }
        assert_eq!(n("/a%/../%41", Base), "/A");
    }

    #[test]
    fn slashes_are_kept_by_base_and_merged_by_the_merge_modes() {
        assert_eq!(n("/a//b///c", Base), "/a//b///c");
        assert_eq!(n("/a//b///c", MergeSlashes), "/a/b/c");
        assert_eq!(n("//a/..//b", MergeSlashes), "/b");
        assert_eq!(n("/a%2Fb", MergeSlashes), "/a%2Fb");
        assert_eq!(n("/a%2Fb%2f%2F%5cc", DecodeAndMergeSlashes), "/a/b/c");
        assert_eq!(
            n("/public/..%2Fsecret.txt", DecodeAndMergeSlashes),
            "/secret.txt"
        );
        assert_eq!(
            n("/public/..%2Fsecret.txt", Base),
            "/public/..%2Fsecret.txt"
        );
    }

    #[test]
    fn params_case_and_non_paths_are_left_alone() {
        assert_eq!(n("/a;x=1/b", Base), "/a;x=1/b");
        assert_eq!(n("/public/..;/secret", Base), "/public/..;/secret");
        assert_eq!(n("/PUBLIC/Secret", Base), "/PUBLIC/Secret");
        assert_eq!(n("*", Base), "*");
        assert_eq!(n("/public/../secret", None), "/public/../secret");
    }

    #[test]
    fn every_normalized_byte_is_one_a_uri_path_may_hold() {
        for b in 1u8..=255 {
            let path = format!("/a{}b", char::from(b));
            let out = n(&path, Base);
            assert!(
                http::uri::PathAndQuery::try_from(out.as_str()).is_ok(),
                "{b:#x}: {out:?}"
            );
        }
    }

    #[test]
    fn a_clean_path_is_borrowed() {
        for p in ["/", "/productpage", "/static/app.js", "/a-b_c~d/e"] {
            assert!(matches!(
                normalize(p, MergeSlashes),
                Ok(std::borrow::Cow::Borrowed(_))
            ));
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        let corpus = [
            "/public/../secret.txt",
            "/%%30%30",
            "/a%2e%2E/b/./c/..",
            "/x\\y/%2e/z",
            "/%41%%41%4",
            "/%%%2e%2e/%",
            "//3%3%N3-N~\\..%2F..%32",
        ];
        for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
            for p in corpus {
                let once = n(p, mode);
                assert_eq!(n(&once, mode), once, "{p} under {mode:?}");
            }
        }
    }
}
