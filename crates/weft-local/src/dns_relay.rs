//! The mesh network's resolver for names that are not the mesh's, as a
//! node's resolver is for a cluster's DNS: pods' proxies ask it (at the
//! control plane's address, port 53) and it asks this machine's own
//! resolver, which nothing on the mesh network could reach otherwise (the
//! mesh's namespaces have no route out, and a loopback stub such as
//! systemd-resolved's is in the machine's namespace alone).
//!
//! A thread started before the supervisor leaves the machine's namespace
//! stays there and opens every upstream socket; the listeners on the mesh
//! network hand it each query.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// How long a query waits for the upstream resolver.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

struct Query {
    bytes: Vec<u8>,
    tcp: bool,
    reply: oneshot::Sender<Option<Vec<u8>>>,
}

/// Asks `upstream` from the namespace the relay was started in.
#[derive(Debug, Clone)]
pub struct Relay {
    tx: mpsc::UnboundedSender<Query>,
}

impl Relay {
    /// Starts the relay's thread in the calling thread's network
    /// namespace (call it before leaving the machine's).
    pub fn start(upstream: IpAddr) -> std::io::Result<Relay> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Query>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("weft-dns-relay".into())
            .spawn(move || {
                rt.block_on(async move {
                    let to = SocketAddr::new(upstream, 53);
                    while let Some(q) = rx.recv().await {
                        tokio::spawn(async move {
                            let answer =
                                tokio::time::timeout(UPSTREAM_TIMEOUT, ask(to, &q.bytes, q.tcp))
                                    .await
                                    .ok()
                                    .flatten();
                            let _ = q.reply.send(answer);
                        });
                    }
                });
            })?;
        Ok(Relay { tx })
    }

    async fn ask(&self, bytes: Vec<u8>, tcp: bool) -> Option<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Query { bytes, tcp, reply }).ok()?;
        answer.await.ok().flatten()
    }

    /// Binds `listen` for UDP and TCP (port 0 takes one port free for
    /// both) in the calling thread's namespace.
    pub async fn bind(self, listen: SocketAddr) -> std::io::Result<Bound> {
        // A port free for UDP may be taken for TCP; with port 0 try a few.
        let mut tries = if listen.port() == 0 { 8 } else { 1 };
        loop {
            let udp = tokio::net::UdpSocket::bind(listen).await?;
            let at = udp.local_addr()?;
            match tokio::net::TcpListener::bind(at).await {
                Ok(tcp) => {
                    return Ok(Bound {
                        relay: self,
                        udp: std::sync::Arc::new(udp),
                        tcp,
                    })
                }
                Err(e) if tries <= 1 => return Err(e),
                Err(_) => tries -= 1,
            }
        }
    }
}

/// A relay bound to its listeners, ready to serve.
pub struct Bound {
    relay: Relay,
    udp: std::sync::Arc<tokio::net::UdpSocket>,
    tcp: tokio::net::TcpListener,
}

impl Bound {
    /// Where it listens (the same port for UDP and TCP); the mesh's
    /// resolver has a fixed address, so only tests ask.
    #[cfg(test)]
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Answers on its listeners by asking upstream; runs on the runtime
    /// it is called on.
    pub async fn serve(self) {
        let Bound { relay, udp, tcp } = self;
        let answering = relay.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    continue;
                };
                let relay = answering.clone();
                tokio::spawn(async move {
                    // Length-prefixed messages, one after another.
                    loop {
                        let Ok(len) = stream.read_u16().await else {
                            return;
                        };
                        let mut q = vec![0u8; usize::from(len)];
                        if stream.read_exact(&mut q).await.is_err() {
                            return;
                        }
                        let Some(a) = relay.ask(q, true).await else {
                            return;
                        };
                        let Ok(n) = u16::try_from(a.len()) else {
                            return;
                        };
                        if stream.write_u16(n).await.is_err() || stream.write_all(&a).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            let (q, relay, udp) = (buf[..n].to_vec(), relay.clone(), udp.clone());
            tokio::spawn(async move {
                if let Some(a) = relay.ask(q, false).await {
                    let _ = udp.send_to(&a, from).await;
                }
            });
        }
    }
}

/// One query to `to`, over UDP or TCP.
async fn ask(to: SocketAddr, q: &[u8], tcp: bool) -> Option<Vec<u8>> {
    if tcp {
        let mut s = tokio::net::TcpStream::connect(to).await.ok()?;
        s.write_u16(u16::try_from(q.len()).ok()?).await.ok()?;
        s.write_all(q).await.ok()?;
        let len = s.read_u16().await.ok()?;
        let mut a = vec![0u8; usize::from(len)];
        s.read_exact(&mut a).await.ok()?;
        return Some(a);
    }
    let bind: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = tokio::net::UdpSocket::bind(bind).await.ok()?;
    s.connect(to).await.ok()?;
    s.send(q).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = s.recv(&mut buf).await.ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    /// A query relayed over UDP and TCP comes back as the upstream
    /// answered it (a stand-in upstream that echoes with the QR bit set).
    #[tokio::test]
    async fn queries_go_upstream_and_back_over_udp_and_tcp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        // The stand-in upstream must be on port 53; take a free loopback
        // address for it.
        let up_ip: std::net::IpAddr = "127.33.53.1".parse().unwrap();
        let Ok(up_udp) = tokio::net::UdpSocket::bind((up_ip, 53)).await else {
            eprintln!("skipped: cannot bind port 53 (not root)");
            return;
        };
        let up_tcp = tokio::net::TcpListener::bind((up_ip, 53)).await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = up_udp.recv_from(&mut buf).await {
                buf[2] |= 0x80;
                let _ = up_udp.send_to(&buf[..n], from).await;
            }
        });
        tokio::spawn(async move {
            while let Ok((mut s, _)) = up_tcp.accept().await {
                let len = s.read_u16().await.unwrap();
                let mut q = vec![0u8; usize::from(len)];
                s.read_exact(&mut q).await.unwrap();
                q[2] |= 0x80;
                s.write_u16(len).await.unwrap();
                s.write_all(&q).await.unwrap();
            }
        });
        let relay = super::Relay::start(up_ip).unwrap();
        let bound = relay.bind((ip, 0).into()).await.unwrap();
        let addr = bound.local_addr().unwrap();
        tokio::spawn(bound.serve());
        let query = [0x12u8, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        let c = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
        c.send_to(&query, addr).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(std::time::Duration::from_secs(2), c.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..2], &[0x12, 0x34]);
        assert_eq!(buf[2] & 0x80, 0x80, "an answer");
        assert_eq!(n, query.len());
        let mut t = tokio::net::TcpStream::connect(addr).await.unwrap();
        t.write_u16(query.len() as u16).await.unwrap();
        t.write_all(&query).await.unwrap();
        let len = t.read_u16().await.unwrap();
        let mut a = vec![0u8; usize::from(len)];
        t.read_exact(&mut a).await.unwrap();
        assert_eq!(a[2] & 0x80, 0x80);
    }
}
