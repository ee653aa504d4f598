//! The first bytes of a TLS connection, from any client, through the SNI
//! reader: it must never panic, and a name it returns must be in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(Some(name)) = weft_proxy::l4::sni::parse_hello(data) {
        assert!(!name.is_empty(), "an empty name must read as no SNI");
        let lower = data.to_ascii_lowercase();
        assert!(lower.windows(name.len()).any(|w| w == name.as_bytes()));
    }
});
