//! Trace context on the wire: W3C `traceparent` and Zipkin's B3, both as
//! one `b3` header and as the `x-b3-*` set. Malformed headers are ignored
//! (the hop starts a new trace), never an error: a client's bad header
//! must not fail its request.

use http::header::{HeaderMap, HeaderValue};
use opentelemetry::trace::{SpanId, TraceId};

/// What the caller said about the trace this request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    /// The trace and the caller's span, when the caller named them.
    pub ids: Option<(TraceId, SpanId)>,
    /// The caller's sampling decision; `None` leaves it to this hop.
    pub sampled: Option<bool>,
    /// The caller used the single `b3` header, so the next hop gets it too.
    pub b3_single: bool,
}

/// Reads the trace context, preferring `traceparent`, then `b3`, then
/// `x-b3-*`, as Envoy does when more than one is present.
pub fn extract(h: &HeaderMap) -> Extracted {
    let b3_single = h.contains_key("b3");
    if let Some((trace, span, sampled)) = header(h, "traceparent").and_then(traceparent) {
        return Extracted {
            ids: Some((trace, span)),
            sampled: Some(sampled),
            b3_single,
        };
    }
    if let Some(v) = header(h, "b3") {
        if let Some((ids, sampled)) = b3(v) {
            return Extracted {
                ids,
                sampled,
                b3_single,
            };
        }
    }
    let ids = header(h, "x-b3-traceid")
        .and_then(b3_trace_id)
        .zip(header(h, "x-b3-spanid").and_then(span_id));
    let sampled = if header(h, "x-b3-flags") == Some("1") {
        Some(true)
    } else {
        header(h, "x-b3-sampled").and_then(|s| match s {
            "1" | "true" | "d" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        })
    };
    Extracted {
        ids,
        sampled,
        b3_single,
    }
}

/// Writes this hop's context for the next one: `traceparent` and the
/// `x-b3-*` set always, `b3` when the caller used it. `tracestate` and
/// baggage pass through as they came.
pub fn inject(
    h: &mut HeaderMap,
    trace: TraceId,
    span: SpanId,
    parent: SpanId,
    sampled: bool,
    b3_single: bool,
) {
    let flag = if sampled { "1" } else { "0" };
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put(
        "traceparent",
        format!("00-{trace}-{span}-0{}", u8::from(sampled)),
    );
    put("x-b3-traceid", trace.to_string());
    put("x-b3-spanid", span.to_string());
    put("x-b3-sampled", flag.to_owned());
    if b3_single {
        let tail = if parent == SpanId::INVALID {
            String::new()
        } else {
            format!("-{parent}")
        };
        put("b3", format!("{trace}-{span}-{flag}{tail}"));
    }
    if parent == SpanId::INVALID {
        h.remove("x-b3-parentspanid");
    } else {
        put("x-b3-parentspanid", parent.to_string());
    }
    // The decision now travels in x-b3-sampled; a stale debug flag would
    // override it downstream.
    h.remove("x-b3-flags");
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `version-traceid-parentid-flags`; a future version may append fields
/// after a dash, which are ignored as the W3C spec asks.
fn traceparent(v: &str) -> Option<(TraceId, SpanId, bool)> {
    let mut parts = v.splitn(5, '-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    if !is_lower_hex(version, 2) || version == "ff" || (version == "00" && rest.is_some()) {
        return None;
    }
    if !is_lower_hex(trace, 32) || !is_lower_hex(span, 16) || !is_lower_hex(flags, 2) {
        return None;
    }
    let trace = TraceId::from_hex(trace)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let span = SpanId::from_hex(span)
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace, span, flags & 1 == 1))
}

/// B3 trace ids are 64 or 128 bits; 64-bit ones are the low half.
fn b3_trace_id(s: &str) -> Option<TraceId> {
    if !(is_lower_hex(s, 32) || is_lower_hex(s, 16)) {
        return None;
    }
    TraceId::from_hex(s).ok().filter(|t| *t != TraceId::INVALID)
}

fn span_id(s: &str) -> Option<SpanId> {
    if !is_lower_hex(s, 16) {
        return None;
    }
    SpanId::from_hex(s).ok().filter(|s| *s != SpanId::INVALID)
}

fn b3_sampling(s: &str) -> Option<Option<bool>> {
    match s {
        "1" | "d" => Some(Some(true)),
        "0" => Some(Some(false)),
        _ => None,
    }
}

/// `b3: {trace}-{span}[-{sampling}[-{parent}]]`, or the sampling state
/// alone (`0`, `1`, `d`). The outer `None` means malformed.
#[allow(clippy::type_complexity)]
fn b3(v: &str) -> Option<(Option<(TraceId, SpanId)>, Option<bool>)> {
    let parts: Vec<&str> = v.split('-').collect();
    match parts.as_slice() {
        [only] => b3_sampling(only).map(|s| (None, s)),
        [trace, span, rest @ ..] if rest.len() <= 2 => {
            let sampled = match rest.first() {
                Some(s) => b3_sampling(s)?,
                None => None,
            };
            if let Some(parent) = rest.get(1) {
                span_id(parent)?;
            }
            Some((Some((b3_trace_id(trace)?, span_id(span)?)), sampled))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("test header"));
        }
        h
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn traceparent_is_read_and_validated() {
        let e = extract(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-01"),
        )]));
        let (t, s) = e.ids.expect("ids");
        assert_eq!(t.to_string(), TRACE);
        assert_eq!(s.to_string(), SPAN);
        assert_eq!(e.sampled, Some(true));
        for bad in [
            format!("00-{TRACE}-{SPAN}-1"),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            "garbage".to_owned(),
        ] {
            assert_eq!(
                extract(&headers(&[("traceparent", &bad)])).ids,
                None,
                "{bad}"
            );
        }
        // A later version may carry more fields.
        let future = extract(&headers(&[(
            "traceparent",
            &format!("01-{TRACE}-{SPAN}-00-x"),
        )]));
        assert_eq!(future.sampled, Some(false));
        assert!(future.ids.is_some());
    }

    #[test]
    fn b3_single_forms() {
        let e = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}-1-{SPAN}"))]));
        assert!(e.b3_single);
        assert_eq!(e.sampled, Some(true));
        assert_eq!(e.ids.map(|(t, _)| t.to_string()), Some(TRACE.to_owned()));
        let short = extract(&headers(&[("b3", &format!("a3ce929d0e0e4736-{SPAN}"))]));
        assert_eq!(
            short.ids.map(|(t, _)| t.to_string()),
            Some("0000000000000000a3ce929d0e0e4736".to_owned())
        );
        assert_eq!(short.sampled, None);
        let deny = extract(&headers(&[("b3", "0")]));
        assert_eq!((deny.ids, deny.sampled), (None, Some(false)));
        let debug = extract(&headers(&[("b3", &format!("{TRACE}-{SPAN}-d"))]));
        assert_eq!(debug.sampled, Some(true));
        assert_eq!(extract(&headers(&[("b3", "x-y-z")])).ids, None);
    }

    #[test]
    fn b3_multi_and_precedence() {
        let e = extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
        ]));
        assert!(e.ids.is_some());
        assert_eq!(e.sampled, Some(false));
        let flagged = extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ]));
        assert_eq!(flagged.sampled, Some(true));
        // traceparent wins over B3.
        let both = extract(&headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-00")),
            ("x-b3-traceid", "1111111111111111"),
            ("x-b3-spanid", "2222222222222222"),
            ("x-b3-sampled", "1"),
        ]));
        assert_eq!(both.sampled, Some(false));
        assert_eq!(both.ids.map(|(_, s)| s.to_string()), Some(SPAN.to_owned()));
    }

    #[test]
    fn inject_writes_every_form() {
        let mut h = headers(&[
            ("b3", "1"),
            ("x-b3-flags", "1"),
            ("x-b3-parentspanid", SPAN),
        ]);
        let trace = TraceId::from_hex(TRACE).expect("hex");
        let span = SpanId::from_hex("1111111111111111").expect("hex");
        inject(&mut h, trace, span, SpanId::INVALID, true, true);
        assert_eq!(
            h["traceparent"],
            format!("00-{TRACE}-1111111111111111-01").as_str()
        );
        assert_eq!(h["x-b3-traceid"], TRACE);
        assert_eq!(h["x-b3-spanid"], "1111111111111111");
        assert_eq!(h["x-b3-sampled"], "1");
        assert_eq!(h["b3"], format!("{TRACE}-1111111111111111-1").as_str());
        assert!(!h.contains_key("x-b3-parentspanid"));
        assert!(!h.contains_key("x-b3-flags"));
        let parent = SpanId::from_hex(SPAN).expect("hex");
        inject(&mut h, trace, span, parent, false, false);
        assert_eq!(h["x-b3-parentspanid"], SPAN);
        assert!(h["traceparent"].to_str().expect("ascii").ends_with("-00"));
        // What we write, we read back.
        let back = extract(&h);
        assert_eq!(back.ids, Some((trace, span)));
        assert_eq!(back.sampled, Some(false));
    }
}
