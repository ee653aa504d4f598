//! One drain for every connection a proxy serves, whatever it carries
//! (HTTP, opaque TCP, the mTLS tunnel, HTTP inside a CONNECT tunnel): at
//! shutdown each connection is told to finish what it has in flight, and
//! the proxy waits for all of them up to its drain time.

use std::time::Duration;

use tokio::sync::watch;

/// Held by the proxy; connections hold a [`Watch`] on it.
pub struct Drain {
    tx: watch::Sender<bool>,
}

/// A connection's view of the drain: it is alive while it holds this (or
/// a clone, as the streams it carries do), and learns from
/// [`Watch::signaled`] when to finish.
#[derive(Clone)]
pub struct Watch {
    rx: watch::Receiver<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl Drain {
    pub fn new() -> Drain {
        let (tx, _) = watch::channel(false);
        Drain { tx }
    }

    pub fn watch(&self) -> Watch {
        Watch {
            rx: self.tx.subscribe(),
        }
    }

    /// Tells every connection to finish, then waits until each has
    /// dropped its watch or `limit` has passed. Returns whether all
    /// finished in time.
    pub async fn drain(&self, limit: Duration) -> bool {
        self.begin();
        self.finished_by(tokio::time::Instant::now() + limit).await
    }

    /// Tells every connection to finish.
    pub fn begin(&self) {
        self.tx.send_replace(true);
    }

    /// Waits until every connection has dropped its watch, or `deadline`.
    pub async fn finished_by(&self, deadline: tokio::time::Instant) -> bool {
        tokio::time::timeout_at(deadline, self.tx.closed())
            .await
            .is_ok()
    }
}

impl Watch {
    /// Resolves once the drain has begun.
    pub async fn signaled(&mut self) {
        // An error means the proxy itself is gone: finish too.
        let _ = self.rx.wait_for(|draining| *draining).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Drain;
    use std::time::Duration;

    #[tokio::test]
    async fn the_drain_waits_for_watches_and_gives_up_at_its_limit() {
        let drain = Drain::new();
        assert!(
            drain.drain(Duration::from_millis(10)).await,
            "no connection: done at once"
        );

        let drain = std::sync::Arc::new(Drain::new());
        let mut watch = drain.watch();
        let conn = tokio::spawn(async move {
            watch.signaled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        assert!(drain.drain(Duration::from_secs(5)).await);
        conn.await.expect("connection task");

        let _stuck = drain.watch();
        assert!(!drain.drain(Duration::from_millis(50)).await);
    }
}
