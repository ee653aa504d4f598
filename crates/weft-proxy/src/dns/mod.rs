//! DNS answered by the proxy, as Istio's DNS proxy does under capture:
//! queries the workload sends to port 53 are redirected to 15053 (UDP and
//! TCP), mesh names are answered from the model (`names`), and everything
//! else goes on to the upstream resolver, the one the pod's
//! `resolv.conf` names (or `--dns-upstream`).

pub mod names;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use simple_dns::rdata::{RData, A, TYPE};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::shared::Shared;

/// Istio's DNS proxy answers with a 30 s TTL.
const TTL: u32 = 30;
/// How long an upstream resolver gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest message taken (UDP with EDNS, or TCP).
const MAX_MESSAGE: usize = 4096;

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Answered here, with this message.
    Local(Vec<u8>),
    /// Not a mesh name: the upstream resolver's to answer.
    Upstream,
}

/// Answers `query` from `table` when it asks for a mesh name; `None` for
/// a message that is not a query weft can read (dropped, as a resolver
/// drops garbage).
pub fn answer(table: &names::NameTable, query: &[u8]) -> Option<Answer> {
    let packet = Packet::parse(query).ok()?;
    let question = packet.questions.first()?;
    let name = question.qname.to_string();
    let addresses = match table.lookup(&name) {
        Some(a) => a,
        // The cluster's service domain holds only the mesh's services: a
        // name there that is not one does not exist (as the cluster's DNS
        // says), without asking upstream for each search-path guess.
        None if table.in_service_domain(&name) => &[],
        None => return Some(Answer::Upstream),
    };
    let mut reply = Packet::new_reply(packet.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE);
    if packet.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    if addresses.is_empty() {
        *reply.rcode_mut() = RCODE::NameError;
    }
    reply.questions.push(question.clone());
    // A mesh name has IPv4 addresses only: an AAAA (or any other) query
    // is answered with none, so the client goes on to its A query.
    if matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY) {
        for a in addresses {
            reply.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                TTL,
                RData::A(A {
                    address: u32::from(*a),
                }),
            ));
        }
    }
    reply.build_bytes_vec_compressed().ok().map(Answer::Local)
}

/// A SERVFAIL for `query`, when the upstream resolver cannot answer.
fn server_failure(query: &[u8]) -> Option<Vec<u8>> {
    let packet = Packet::parse(query).ok()?;
    let mut reply = Packet::new_reply(packet.id());
    *reply.rcode_mut() = RCODE::ServerFailure;
    if let Some(q) = packet.questions.first() {
        reply.questions.push(q.clone());
    }
    reply.build_bytes_vec().ok()
}

/// Where a query not for the mesh goes.
#[derive(Debug, Clone, Copy)]
pub struct Upstream(pub Option<SocketAddr>);

impl Upstream {
    /// `given`, else the first nameserver of `/etc/resolv.conf` (under
    /// capture the pod's own, which `ip netns exec` puts there).
    pub fn resolve(given: Option<SocketAddr>) -> Upstream {
        Upstream(given.or_else(|| {
            let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
            nameserver(&text)
        }))
    }

    /// Asks the upstream resolver; a SERVFAIL when there is none or it
    /// does not answer in time.
    async fn ask(self, query: &[u8]) -> Option<Vec<u8>> {
        let asked = async {
            let to = self.0?;
            let local: SocketAddr = if to.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local).await.ok()?;
            socket.connect(to).await.ok()?;
            socket.send(query).await.ok()?;
            let mut buf = vec![0u8; MAX_MESSAGE];
            let n = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buf))
                .await
                .ok()?
                .ok()?;
            buf.truncate(n);
            Some(buf)
        };
        match asked.await {
            Some(reply) => Some(reply),
            None => server_failure(query),
        }
    }
}

/// The first `nameserver` of a `resolv.conf`.
fn nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next()?.parse::<std::net::IpAddr>().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// The reply to `query`: from the model, or from upstream.
async fn reply(shared: &Shared, upstream: Upstream, query: &[u8]) -> Option<Vec<u8>> {
    let local = answer(&shared.snapshot.load().names, query)?;
    match local {
        Answer::Local(reply) => Some(reply),
        Answer::Upstream => upstream.ask(query).await,
    }
}

/// Serves DNS on `udp` and `tcp` until `stop` says so.
pub async fn serve(
    shared: Arc<Shared>,
    udp: UdpSocket,
    tcp: TcpListener,
    upstream: Upstream,
    mut stop: watch::Receiver<bool>,
) {
    let udp = Arc::new(udp);
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        tokio::select! {
            got = udp.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                let query = buf[..n].to_vec();
                let (shared, udp) = (shared.clone(), udp.clone());
                tokio::spawn(async move {
                    if let Some(r) = reply(&shared, upstream, &query).await {
                        let _ = udp.send_to(&r, from).await;
                    }
                });
            }
            accepted = tcp.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                tokio::spawn(serve_tcp(shared.clone(), stream, upstream));
            }
            _ = stop.changed() => return,
        }
    }
}

/// DNS over TCP: each message after its two-byte length, as many as the
/// client sends.
async fn serve_tcp(shared: Arc<Shared>, mut stream: tokio::net::TcpStream, upstream: Upstream) {
    loop {
        let mut len = [0u8; 2];
        let read = tokio::time::timeout(UPSTREAM_TIMEOUT, stream.read_exact(&mut len)).await;
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let n = usize::from(u16::from_be_bytes(len));
        let mut query = vec![0u8; n];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(r) = reply(&shared, upstream, &query).await else {
            return;
        };
        let Ok(len) = u16::try_from(r.len()) else {
            return;
        };
        if stream.write_all(&len.to_be_bytes()).await.is_err()
            || stream.write_all(&r).await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{Name, Question, QCLASS};

    fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut q = Packet::new_query(7);
        q.set_flags(PacketFlag::RECURSION_DESIRED);
        q.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(qtype),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        q.build_bytes_vec().unwrap()
    }

    fn table() -> names::NameTable {
        names::NameTable::of(&[], &[names::echo_listener()])
    }

    #[test]
    fn mesh_names_are_answered_and_others_go_upstream() {
        let t = table();
        let Some(Answer::Local(bytes)) =
            answer(&t, &query("echo.default.svc.cluster.local", TYPE::A))
        else {
            panic!("answered here");
        };
        let reply = Packet::parse(&bytes).unwrap();
        assert_eq!(reply.id(), 7);
        assert_eq!(reply.rcode(), RCODE::NoError);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(
            reply.answers[0].rdata,
            RData::A(A {
                address: u32::from(std::net::Ipv4Addr::new(198, 18, 0, 9))
            })
        );
        // AAAA: the name exists, with no IPv6 address.
        let Some(Answer::Local(bytes)) =
            answer(&t, &query("echo.default.svc.cluster.local", TYPE::AAAA))
        else {
            panic!("answered here");
        };
        let reply = Packet::parse(&bytes).unwrap();
        assert_eq!(reply.rcode(), RCODE::NoError);
        assert!(reply.answers.is_empty());
        assert_eq!(
            answer(&t, &query("example.org", TYPE::A)),
            Some(Answer::Upstream)
        );
        // A search-path guess in the service domain: NXDOMAIN here.
        let Some(Answer::Local(bytes)) = answer(
            &t,
            &query("echo.default.default.svc.cluster.local", TYPE::A),
        ) else {
            panic!("answered here");
        };
        assert_eq!(Packet::parse(&bytes).unwrap().rcode(), RCODE::NameError);
        assert_eq!(answer(&t, b"not dns"), None);
    }

    #[test]
    fn the_upstream_is_resolv_confs_first_nameserver() {
        let conf = "# pod\nsearch default.svc.cluster.local\nnameserver 198.19.0.1\nnameserver 198.19.0.2\n";
        assert_eq!(nameserver(conf), Some("198.19.0.1:53".parse().unwrap()));
        assert_eq!(nameserver("search x\n"), None);
    }

    #[tokio::test]
    async fn no_upstream_is_a_server_failure() {
        let q = query("example.org", TYPE::A);
        let reply = Upstream(None).ask(&q).await.unwrap();
        let reply = Packet::parse(&reply).unwrap();
        assert_eq!(reply.rcode(), RCODE::ServerFailure);
        assert_eq!(reply.id(), 7);
    }
}
