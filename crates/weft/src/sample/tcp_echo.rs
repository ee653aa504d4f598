//! A TCP echo server, like Istio's tcp-echo sample: every line comes back
//! prefixed with this instance's name, so tests can see who answered.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::Common;

pub async fn run(common: Common) -> anyhow::Result<()> {
    let listener = TcpListener::bind(common.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", common.listen))?;
    eprintln!(
        "tcp-echo {} listening on {}",
        common.name,
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let name = common.name.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if w.write_all(format!("{name} {line}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
}
