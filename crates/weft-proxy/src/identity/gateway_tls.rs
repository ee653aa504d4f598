//! TLS termination on gateway ports (Gateway servers with `tls.mode`
//! SIMPLE or MUTUAL): the client's SNI picks the server by its `hosts`,
//! whose `credentialName` holds the certificate (and, for MUTUAL, the CA
//! that client certificates must chain to, the revocation lists and the
//! pins they are checked against). Protocol versions and TLS 1.2 suites
//! follow the server's settings. ALPN offers h2 and http/1.1.

use std::sync::Arc;
use std::time::Duration;

use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use weft_identity::pins::{CertPins, PinnedClientVerifier};
use weft_model::ServerTls;

use crate::identity::credentials::{revocation_lists, Credential, Credentials};

/// Whether a server's TLS settings mean this proxy terminates TLS.
pub fn terminates(t: &ServerTls) -> bool {
    matches!(t.mode.as_str(), "SIMPLE" | "MUTUAL" | "OPTIONAL_MUTUAL")
}

/// `hosts` of a Gateway server (`ns/host` or `host`, wildcards) admit an
/// SNI name.
pub(crate) fn admits(hosts: &[String], sni: &str) -> bool {
    hosts.iter().any(|h| {
        let h = h.split_once('/').map_or(h.as_str(), |(_, h)| h);
        h == "*"
            || h.eq_ignore_ascii_case(sni)
            || h.strip_prefix('*').is_some_and(|suffix| {
                sni.len() > suffix.len()
                    && sni[sni.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            })
    })
}

/// The server a connection belongs to: the first whose hosts admit its
/// SNI; without SNI, the first server.
pub fn pick<'a>(servers: &'a [ServerTls], sni: Option<&str>) -> Option<&'a ServerTls> {
    let terminating = servers.iter().filter(|t| terminates(t));
    match sni {
        Some(name) => terminating.clone().find(|t| admits(&t.hosts, name)),
        None => terminating.clone().next(),
    }
}

/// `server`'s configuration: built once per credential version (and
/// caCrl file), so a handshake neither parses nor reads files.
fn config_for(server: &ServerTls, credentials: &Credentials) -> Result<Arc<ServerConfig>, String> {
    let cred = credentials.get(&server.credential_name)?;
    cred.server_config(server, || build(server, &cred))
}

fn build(server: &ServerTls, cred: &Credential) -> Result<ServerConfig, String> {
    let key = cred.key.clone().ok_or_else(|| {
        format!(
            "credential {:?} has no certificate and key",
            server.credential_name
        )
    })?;
    let offer = weft_identity::server_tls::offer(
        &server.min_version,
        &server.max_version,
        &server.cipher_suites,
        &server.ecdh_curves,
    )?;
    let builder = ServerConfig::builder_with_provider(offer.provider.clone())
        .with_protocol_versions(&offer.versions)
        .map_err(|e| e.to_string())?;
    let builder = if server.mode == "SIMPLE" {
        builder.with_no_client_auth()
    } else {
        let roots = cred.roots.clone().ok_or_else(|| {
            format!(
                "{} needs a CA for client certificates: put ca.crt in credential {:?}",
                server.mode, server.credential_name
            )
        })?;
        let mut v = WebPkiClientVerifier::builder_with_provider(roots, offer.provider.clone());
        let crls = revocation_lists(Some(cred), &server.ca_crl)?;
        if !crls.is_empty() {
            // A list past its nextUpdate is refused, as OpenSSL does.
            v = v.with_crls(crls).enforce_revocation_expiration();
        }
        if server.mode == "OPTIONAL_MUTUAL" {
            v = v.allow_unauthenticated();
        }
        let pins = CertPins::parse(&server.verify_spki, &server.verify_hash)?;
        let verifier = PinnedClientVerifier::wrap(
            v.build().map_err(|e| e.to_string())?,
            pins,
            server.subject_alt_names.clone(),
        );
        builder.with_client_cert_verifier(verifier)
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(Fixed(key)));
    // No session is resumed: every handshake is a full one, with the
    // client certificate checked against the current pins and lists.
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.ignore_client_order = offer.server_order;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The one certificate of a server (SNI already chose the server).
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Reads the ClientHello, picks the server, completes the handshake.
pub async fn accept(
    stream: TcpStream,
    servers: &[ServerTls],
    credentials: &Credentials,
) -> Result<TlsStream<TcpStream>, String> {
    let lazy = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = tokio::time::timeout(Duration::from_secs(10), lazy)
        .await
        .map_err(|_| "no ClientHello within 10 s".to_owned())?
        .map_err(|e| format!("not a TLS ClientHello: {e}"))?;
    let sni = start.client_hello().server_name().map(str::to_owned);
    let server = pick(servers, sni.as_deref())
        .ok_or_else(|| format!("no Gateway server on this port admits SNI {sni:?}"))?;
    let config = config_for(server, credentials)?;
    tokio::time::timeout(Duration::from_secs(10), start.into_stream(config))
        .await
        .map_err(|_| "the TLS handshake did not finish within 10 s".to_owned())?
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(hosts: &[&str], mode: &str, cred: &str) -> ServerTls {
        ServerTls {
            mode: mode.into(),
            credential_name: cred.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            https_redirect: false,
            ..ServerTls::default()
        }
    }

    #[test]
    fn sni_picks_the_server_by_hosts() {
        let servers = vec![
            server(&["bookinfo.example.com"], "SIMPLE", "bookinfo"),
            server(&["*.internal.example.com"], "MUTUAL", "internal"),
            server(&["redirect.example.com"], "", ""),
        ];
        let name = |sni: Option<&str>| pick(&servers, sni).map(|s| s.credential_name.as_str());
        assert_eq!(name(Some("bookinfo.example.com")), Some("bookinfo"));
        assert_eq!(name(Some("BOOKINFO.example.com")), Some("bookinfo"));
        assert_eq!(name(Some("api.internal.example.com")), Some("internal"));
        assert_eq!(name(Some("internal.example.com")), None);
        assert_eq!(name(Some("redirect.example.com")), None);
        assert_eq!(name(None), Some("bookinfo"));
    }
}
