//! The socket factory: every socket the proxy listens or connects on is
//! opened here, plainly or as [`SocketOptions`] say: with a mark (so
//! routing rules can tell the proxy's own traffic from what they capture),
//! with `IP_TRANSPARENT` (to accept and bind for addresses that are not the
//! host's, as TPROXY capture needs), or inside a given network namespace
//! (a pod's, for a node proxy).
//!
//! Outgoing connections to mesh workloads leave from the proxy's own
//! address when it has one: a mesh peer then sees the calling workload's
//! address as the connection's source (what `source.ip` and `ipBlocks`
//! match), as a pod's traffic leaves from the pod's IP. On one host every
//! proxy shares loopback, and an unbound socket would leave from 127.0.0.1.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

/// How a socket is opened. The default is a plain socket in the proxy's
/// own network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `SO_MARK` (needs `CAP_NET_ADMIN`).
    pub mark: Option<u32>,
    /// `IP_TRANSPARENT` / `IPV6_TRANSPARENT` (needs `CAP_NET_ADMIN`).
    pub transparent: bool,
    /// A network namespace to open the socket in: `/var/run/netns/NAME`
    /// or `/proc/PID/ns/net` (needs `CAP_SYS_ADMIN`). The socket stays in
    /// it for its whole life, whatever namespace the proxy runs in.
    pub netns: Option<PathBuf>,
}

/// The mark TPROXY capture routes back to the proxy (Istio's 1337): a
/// connection that leaves from a client's address carries it, so the
/// replies to that foreign address come back to this socket.
pub const TPROXY_MARK: u32 = 1337;

/// How many connections may wait to be accepted (tokio's default).
const BACKLOG: i32 = 1024;

/// A listening socket on `addr`, ready for tokio.
pub fn listen(addr: SocketAddr, opts: &SocketOptions) -> io::Result<std::net::TcpListener> {
    in_namespace(opts.netns.as_deref(), || {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        set_options(&socket, addr, opts)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    })
}

/// Connects to `addr`, from `source` when given (and of the same family).
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let plain = SocketOptions::default();
    let Some(source) = source.filter(|s| s.is_ipv4() == addr.is_ipv4()) else {
        return TcpStream::connect(addr).await;
    };
    connect_with(addr, Some(source), &plain).await
}

/// Connects to `addr` from `source`; `transparent`: `source` may be an
/// address of another host (a client's, under TPROXY capture), so the
/// socket is transparent and marked for TPROXY's return route.
pub async fn connect_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
    transparent: bool,
) -> io::Result<TcpStream> {
    if !transparent {
        return connect(addr, source).await;
    }
    let opts = SocketOptions {
        mark: Some(TPROXY_MARK),
        transparent: true,
        netns: None,
    };
    connect_with(addr, source, &opts).await
}

/// As `connect_from`, and while `addr` refuses the connection (nothing
/// listens yet), dials again with a growing pause until `patience` has
/// passed: for a local application that is restarting.
pub async fn connect_patiently(
    addr: SocketAddr,
    source: Option<IpAddr>,
    transparent: bool,
    patience: std::time::Duration,
) -> io::Result<TcpStream> {
    let until = tokio::time::Instant::now() + patience;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match connect_from(addr, source, transparent).await {
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionRefused
                    && tokio::time::Instant::now() + pause < until =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Connects to `addr` on a socket opened as `opts` say, from `source` when
/// given.
pub async fn connect_with(
    addr: SocketAddr,
    source: Option<IpAddr>,
    opts: &SocketOptions,
) -> io::Result<TcpStream> {
    let source = source.filter(|s| s.is_ipv4() == addr.is_ipv4());
    let socket = in_namespace(opts.netns.as_deref(), || {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        set_options(&socket, addr, opts)?;
        if let Some(source) = source {
            // The port is chosen at connect time, per destination, as an
            // unbound socket's is: a socket bound to port 0 takes a port
            // of the source address for itself alone, and thousands of
            // connections would run the address out of ports.
            let _ = nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
            );
            socket.bind(&SocketAddr::new(source, 0).into())?;
        }
        socket.set_nonblocking(true)?;
        Ok(socket)
    })?;
    TcpSocket::from_std_stream(socket.into())
        .connect(addr)
        .await
}

/// Where a captured connection was going before the capture rules
/// redirected it to the proxy (`SO_ORIGINAL_DST`). A connection that was
/// not redirected (TPROXY, or a client that dialled the proxy's port
/// itself) answers with its own local address.
pub fn original_destination(stream: &TcpStream) -> io::Result<SocketAddr> {
    let local = stream.local_addr()?;
    if local.is_ipv6() {
        return Ok(local);
    }
    match nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::OriginalDst) {
        Ok(dst) => {
            let dst = nix::sys::socket::SockaddrIn::from(dst);
            Ok(SocketAddr::new(IpAddr::V4(dst.ip()), dst.port()))
        }
        // No NAT entry: the connection came to the proxy as it is.
        Err(nix::errno::Errno::ENOENT) => Ok(local),
        Err(e) => Err(io::Error::from(e)),
    }
}

fn set_options(socket: &Socket, addr: SocketAddr, opts: &SocketOptions) -> io::Result<()> {
    if let Some(mark) = opts.mark {
        socket.set_mark(mark)?;
    }
    if opts.transparent {
        match addr {
            SocketAddr::V4(_) => socket.set_ip_transparent_v4(true)?,
            SocketAddr::V6(_) => socket.set_ip_transparent_v6(true)?,
        }
    }
    Ok(())
}

/// Runs `open` in network namespace `netns`, on a thread of its own: a
/// thread's namespace is its own to change, and a socket keeps the
/// namespace it was made in after the thread is gone.
pub fn in_namespace<T: Send>(
    netns: Option<&Path>,
    open: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let Some(path) = netns else {
        return open();
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = File::open(path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("network namespace {}: {e}", path.display()),
                    )
                })?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    io::Error::other(format!(
                        "cannot enter network namespace {}: {e}",
                        path.display()
                    ))
                })?;
                open()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the socket thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::{connect, connect_with, listen, SocketOptions};
    use std::process::Command;

    /// An application that refuses for a moment (restarting) is waited
    /// for; one that keeps refusing fails once the patience is spent.
    #[tokio::test]
    async fn a_refusing_application_is_waited_for_a_while() {
        use std::time::{Duration, Instant};
        // An address of this test's own (no other test uses 127.253/16),
        // so nobody else can take the port while it is closed.
        let addr: std::net::SocketAddr = "127.253.0.1:7070".parse().unwrap();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let l = tokio::net::TcpListener::bind(addr).await.unwrap();
            let _ = l.accept().await;
        });
        let started = Instant::now();
        super::connect_patiently(addr, None, false, Duration::from_secs(3))
            .await
            .expect("connected once it listened");
        assert!(started.elapsed() >= Duration::from_millis(300));
        late.await.unwrap();

        let gone: std::net::SocketAddr = "127.253.0.1:7071".parse().unwrap();
        let started = Instant::now();
        let e = super::connect_patiently(gone, None, false, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(started.elapsed() < Duration::from_secs(2));
        // Without patience, a refusal is at once.
        let started = Instant::now();
        assert!(super::connect_patiently(gone, None, false, Duration::ZERO)
            .await
            .is_err());
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_bound_connection_leaves_from_its_source() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source: std::net::IpAddr = "127.0.99.7".parse().unwrap();
        let (_client, accepted) = tokio::join!(connect(addr, Some(source)), listener.accept());
        assert_eq!(accepted.unwrap().1.ip(), source);
    }

    /// Whether this process runs with an effective user id of 0.
    fn root() -> bool {
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                == Some("0")
        })
    }

    #[tokio::test]
    async fn marked_and_transparent_sockets() {
        if !root() {
            eprintln!("skipped: SO_MARK and IP_TRANSPARENT need root (CAP_NET_ADMIN)");
            return;
        }
        let marked = SocketOptions {
            mark: Some(1337),
            ..Default::default()
        };
        let l = listen("127.0.0.1:0".parse().unwrap(), &marked).unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(socket2::SockRef::from(&l).mark().unwrap(), 1337);
        let l = tokio::net::TcpListener::from_std(l).unwrap();
        let (c, _) = tokio::join!(connect_with(addr, None, &marked), l.accept());
        assert_eq!(socket2::SockRef::from(&c.unwrap()).mark().unwrap(), 1337);

        // An address no interface has: only a transparent socket may bind
        // it. Nothing is sent there.
        let foreign = "198.51.100.7:8080".parse().unwrap();
        assert!(listen(foreign, &SocketOptions::default()).is_err());
        let t = listen(
            foreign,
            &SocketOptions {
                transparent: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(socket2::SockRef::from(&t).ip_transparent_v4().unwrap());
    }

    /// A network namespace for one test, removed even when it fails.
    struct Netns(String);

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    #[tokio::test]
    async fn sockets_open_inside_a_network_namespace() {
        if !root() {
            eprintln!("skipped: entering a network namespace needs root");
            return;
        }
        let ns = Netns(format!("weft-sock-{}", std::process::id()));
        let made = Command::new("ip").args(["netns", "add", &ns.0]).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: `ip netns add` is not available here");
            return;
        }
        let up = Command::new("ip")
            .args(["-n", &ns.0, "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success());
        let inside = SocketOptions {
            netns: Some(format!("/var/run/netns/{}", ns.0).into()),
            ..Default::default()
        };
        let l = listen("127.0.0.1:0".parse().unwrap(), &inside).unwrap();
        let addr = l.local_addr().unwrap();
        // The namespace's own view: `ss` run inside it lists the port.
        let ss = Command::new("ip")
            .args(["netns", "exec", &ns.0, "ss", "-Htln"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&ss.stdout).into_owned();
        assert!(listed.contains(&format!(":{}", addr.port())), "{listed}");
        let l = tokio::net::TcpListener::from_std(l).unwrap();
        let (c, a) = tokio::join!(connect_with(addr, None, &inside), l.accept());
        assert!(c.is_ok() && a.is_ok());
        let missing = SocketOptions {
            netns: Some("/var/run/netns/weft-no-such-namespace".into()),
            ..Default::default()
        };
        let e = listen("127.0.0.1:0".parse().unwrap(), &missing).unwrap_err();
        assert!(e.to_string().contains("weft-no-such-namespace"), "{e}");
    }
}
