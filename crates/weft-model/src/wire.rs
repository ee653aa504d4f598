//! The control-plane stream's messages (`proto/weft/v1/model.proto`),
//! written with prost's derives so no protoc or build script is needed.
//!
//! The model itself travels as JSON inside `ModelUpdate`: it is versioned
//! by `MODEL_VERSION`, self-describing for `weft proxy-config`, and keeps
//! one definition of the model (the Rust types) instead of two.

/// `/weft.v1.ModelStream/Stream`
pub const STREAM_PATH: &str = "/weft.v1.ModelStream/Stream";
pub const SERVICE_NAME: &str = "weft.v1.ModelStream";

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProxyMessage {
    #[prost(oneof = "proxy_message::Kind", tags = "1, 2")]
    pub kind: Option<proxy_message::Kind>,
}

pub mod proxy_message {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Hello(super::Hello),
        #[prost(message, tag = "2")]
        Ack(super::Ack),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(string, tag = "1")]
    pub proxy: String,
    #[prost(string, tag = "2")]
    pub token: String,
    #[prost(string, tag = "3")]
    pub served_version: String,
    /// The largest model the proxy takes in one message (0: not said, an
    /// older proxy: tonic's default of 4 MiB). A larger one is not sent;
    /// the proxy is reported STALE with the reason instead.
    #[prost(uint64, tag = "4")]
    pub max_model_bytes: u64,
    /// The proxy's admin address (`/ready`, `/metrics`), where the control
    /// plane reads its traffic for the graph; empty when it has none.
    #[prost(string, tag = "5")]
    pub admin: String,
    /// `sidecar` or `gateway`, as its model says.
    #[prost(string, tag = "6")]
    pub role: String,
    /// The proxy puts a model sent in parts back together (`ModelUpdate`
    /// `part`/`parts`). A proxy that does not say is sent whole models.
    #[prost(bool, tag = "7")]
    pub takes_parts: bool,
    /// The proxy takes its model in sections, and after the first only
    /// the sections that changed (`ModelUpdate` `in_sections`). A proxy
    /// that does not say is sent whole models.
    #[prost(bool, tag = "8")]
    pub takes_sections: bool,
}

/// The largest model a proxy takes by default. A proxy that takes parts
/// is sent a larger model than `PART_BYTES` in parts of that size, so no
/// message nears a transport's limit; a model over the proxy's limit is
/// refused loudly at both ends.
pub const MAX_MODEL_BYTES: usize = 64 * 1024 * 1024;

/// The size of the parts a model is sent in to a proxy that takes parts.
/// Small: gRPC keeps an encoding buffer the size of the largest message
/// for as long as the stream lives, and a control plane holds thousands
/// of streams (at 1 MiB, 2000 proxies' first models left 3.9 GB behind).
pub const PART_BYTES: usize = 64 * 1024;

/// tonic's own limit, which proxies that do not say theirs have.
pub const LEGACY_MAX_MODEL_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Ack {
    #[prost(string, tag = "1")]
    pub nonce: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub error: String,
    /// The proxy asks for all of its model: a change came on top of a
    /// version it does not hold.
    #[prost(bool, tag = "4")]
    pub resync: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelUpdate {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub nonce: String,
    /// `Bytes`: the control plane sends one buffer to every proxy that
    /// shares a model, and a proxy decodes it without a copy.
    #[prost(bytes = "bytes", tag = "3")]
    pub model_json: bytes::Bytes,
    /// Which part of the model's JSON this is, from 0, when it comes in
    /// `parts` parts; every part carries the same version and nonce, and
    /// the proxy answers once, for the whole.
    #[prost(uint32, tag = "4")]
    pub part: u32,
    /// How many parts the model comes in; 0 (a control plane that does not
    /// split) or 1: this message is the whole model.
    #[prost(uint32, tag = "5")]
    pub parts: u32,
    /// `model_json` is not the model's JSON but an encoded [`Sections`]:
    /// the model, or what changed in it, in sections.
    #[prost(bool, tag = "6")]
    pub in_sections: bool,
}

/// A model in sections (`weft_model::sections`), or the sections of it
/// that changed since `base`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sections {
    /// These are all of the model's sections: whatever the proxy held
    /// before goes.
    #[prost(bool, tag = "1")]
    pub full: bool,
    /// The version a change applies on top of; a proxy that holds another
    /// asks for all of its model (`Ack.resync`).
    #[prost(string, tag = "2")]
    pub base: String,
    /// New or changed sections.
    #[prost(message, repeated, tag = "3")]
    pub sections: Vec<Section>,
    /// Sections the model no longer has.
    #[prost(message, repeated, tag = "4")]
    pub removed: Vec<SectionRef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Section {
    #[prost(message, optional, tag = "1")]
    pub key: Option<SectionRef>,
    /// XXH3 of `json`, as `names::content_version_of` gives it.
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(bytes = "bytes", tag = "3")]
    pub json: bytes::Bytes,
}

/// A section's key (`weft_model::sections::SectionKey`) on the wire.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SectionRef {
    /// `cluster`, `virtualHost`, ... (`SectionKind::as_str`).
    #[prost(string, tag = "1")]
    pub kind: String,
    #[prost(string, tag = "2")]
    pub parent: String,
    #[prost(string, tag = "3")]
    pub name: String,
}

/// `/weft.v1.Certificates/Sign`, on the control plane's TLS port (15012).
pub const SIGN_PATH: &str = "/weft.v1.Certificates/Sign";

/// A proxy asks for its workload certificate. It proves who it is with its
/// bootstrap token; the CA signs only the SPIFFE ID that proxy is
/// entitled to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CertificateRequest {
    #[prost(string, tag = "1")]
    pub proxy: String,
    #[prost(string, tag = "2")]
    pub token: String,
    /// PKCS#10, PEM. The private key stays with the proxy.
    #[prost(string, tag = "3")]
    pub csr_pem: String,
    /// Requested lifetime; the CA may shorten it. 0 asks for the default.
    #[prost(uint64, tag = "4")]
    pub ttl_seconds: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CertificateResponse {
    /// PEM certificates, leaf first.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
    /// The roots peers' certificates must chain to (more than one while a
    /// root rotation overlaps).
    #[prost(string, repeated, tag = "2")]
    pub trust_bundle: Vec<String>,
}

/// `/weft.v1.Certificates/Credential`: a TLS credential (Gateway or
/// DestinationRule `credentialName`) for a proxy whose model names it.
pub const CREDENTIAL_PATH: &str = "/weft.v1.Certificates/Credential";

#[derive(Clone, PartialEq, prost::Message)]
pub struct CredentialRequest {
    #[prost(string, tag = "1")]
    pub proxy: String,
    #[prost(string, tag = "2")]
    pub token: String,
    #[prost(string, tag = "3")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CredentialResponse {
    /// PEM, leaf first; empty for a CA-only credential.
    #[prost(string, tag = "1")]
    pub cert_chain: String,
    /// PEM.
    #[prost(string, tag = "2")]
    pub private_key: String,
    /// PEM roots to verify the peer with; may be empty.
    #[prost(string, tag = "3")]
    pub ca_certificates: String,
    /// PEM revocation lists for the peer's chain; may be empty.
    #[prost(string, tag = "4")]
    pub ca_crl: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn round_trip() {
        let m = ProxyMessage {
            kind: Some(proxy_message::Kind::Hello(Hello {
                proxy: "default/a-0".into(),
                token: "t".into(),
                served_version: String::new(),
                max_model_bytes: MAX_MODEL_BYTES as u64,
                admin: "127.0.0.1:15000".into(),
                role: "sidecar".into(),
                takes_parts: true,
                takes_sections: true,
            })),
        };
        let bytes = m.encode_to_vec();
        assert_eq!(ProxyMessage::decode(bytes.as_slice()).unwrap(), m);
        // Field 1 (hello), length-delimited: the wire form the .proto says.
        assert_eq!(bytes[0], 0x0a);
    }

    /// A Hello from a proxy that predates `max_model_bytes` decodes with
    /// it 0, which the control plane reads as tonic's 4 MiB.
    #[test]
    fn an_older_hello_says_no_limit() {
        let old = ProxyMessage {
            kind: Some(proxy_message::Kind::Hello(Hello {
                proxy: "default/a-0".into(),
                token: "t".into(),
                served_version: "v".into(),
                max_model_bytes: 0,
                admin: String::new(),
                role: String::new(),
                takes_parts: false,
                takes_sections: false,
            })),
        };
        let decoded = ProxyMessage::decode(old.encode_to_vec().as_slice()).unwrap();
        let Some(proxy_message::Kind::Hello(h)) = decoded.kind else {
            panic!("not a hello")
        };
        assert_eq!(h.max_model_bytes, 0);
        assert!(!h.takes_parts, "an older proxy is sent whole models");
        assert!(!h.takes_sections);
    }
}
