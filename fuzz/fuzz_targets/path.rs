//! Request paths from outside, through Istio's path normalization. It must
//! never panic, and what it returns must be settled: a path that routing
//! and authorization matched does not change when it is normalized again
//! (by the next proxy, or by the application), holds no dot segment and
//! starts with a slash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_model::PathNormalization;
use weft_proxy::http::path::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = format!("/{text}");
    for mode in [
        PathNormalization::Base,
        PathNormalization::MergeSlashes,
        PathNormalization::DecodeAndMergeSlashes,
    ] {
        let Ok(once) = normalize(&path, mode) else {
            continue;
        };
        assert!(once.starts_with('/'), "{path:?} -> {once:?}");
        assert!(once.is_ascii(), "{path:?} -> {once:?}");
        let twice = normalize(&once, mode).expect("a normalized path normalizes");
        assert_eq!(once, twice, "{path:?} under {mode:?}");
        for segment in once.split('/') {
            assert!(segment != "." && segment != "..", "{path:?} -> {once:?}");
        }
        if mode != PathNormalization::Base {
            assert!(!once.contains("//"), "{path:?} -> {once:?}");
        }
        // The proxy turns it back into a URI: it must parse.
        assert!(
            http::uri::PathAndQuery::try_from(once.as_ref()).is_ok(),
            "{path:?} -> {once:?}"
        );
    }
});
