//! Worker threads, one event loop each, as Envoy's workers and nginx's
//! worker processes: a connection is accepted on the main thread and then
//! lives on one worker, with every task it starts, until it closes.
//!
//! tokio's multi-threaded runtime instead moves tasks between threads to
//! balance them, and a request's tasks (the downstream connection, the
//! upstream connection, the response) wake each other across CPUs. On
//! the benchmark's 2-core machine a gateway on that runtime did 37 000
//! requests/s at 0.025 CPU-ms each; on one event loop, 52 000 at 0.017.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::runtime::Handle;

/// Where new connections go: round robin over the workers, or the calling
/// runtime when there are none (a single-threaded proxy).
#[derive(Default, Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

/// How many workers this process started (pools size their idle lists by
/// it; one proxy runs per process).
static STARTED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's worker number (1, 2, …), 0 off the workers. Pools
    /// keep idle connections per worker, so a request reuses connections
    /// whose tasks live on its own thread.
    static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Workers {
    /// Starts `n` worker threads, each running its own single-threaded
    /// runtime until the process exits.
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::with_capacity(n);
        for i in 1..=n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(format!("weft-worker-{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    rt.block_on(std::future::pending::<()>());
                })?;
        }
        STARTED.store(n, Ordering::Relaxed);
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
        })
    }

    /// Serves `stream` with `serve` on the next worker. The socket moves
    /// to that worker's event loop, so all its I/O happens there.
    pub fn spawn_connection<F, Fut>(&self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.handles.is_empty() {
            tokio::spawn(serve(stream));
            return;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "connection could not be handed to a worker");
                return;
            }
        };
        self.handles[i].spawn(async move {
            match TcpStream::from_std(std_stream) {
                Ok(s) => serve(s).await,
                Err(e) => tracing::debug!(error = %e, "worker could not take a connection"),
            }
        });
    }
}

/// The calling thread's worker number, 0 off the workers.
pub fn current() -> usize {
    INDEX.with(std::cell::Cell::get)
}

/// How many workers the process started.
pub fn started() -> usize {
    STARTED.load(Ordering::Relaxed)
}
