//! A curl-like client for inside the mesh (`weft sample-app curl URL`):
//! it goes through the sidecar named by `HTTP_PROXY`, as any workload, and
//! prints one line per response, or the body with --body. Every loop is
//! bounded by --count.

use std::time::Duration;

use http::HeaderMap;

use super::client;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// `http://host:port/path`
    pub url: String,
    /// How many requests to send.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Pause between requests, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// Extra request headers, `name: value`.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Print response bodies instead of one status line per request.
    #[arg(long)]
    pub body: bool,
    /// Give up on a request after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Fail (exit 1) when a response is 400 or above, as `curl -f`.
    #[arg(short = 'f', long)]
    pub fail: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let rest = args.url.strip_prefix("http://").ok_or_else(|| {
        anyhow::anyhow!("only http:// URLs; TLS to the mesh is the sidecar's job")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("header {h:?} is not `name: value`"))?;
        headers.insert(
            http::HeaderName::from_bytes(k.trim().as_bytes())?,
            http::HeaderValue::from_str(v.trim())?,
        );
    }
    let mut failures = 0;
    for i in 0..args.count {
        if i > 0 && args.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
        match client::get_with_headers(
            &authority,
            path,
            &headers,
            Duration::from_millis(args.timeout_ms),
        )
        .await
        {
            Ok(r) if args.fail && r.status.as_u16() >= 400 => {
                failures += 1;
                println!(
                    "{} {}",
                    r.status.as_u16(),
                    r.served_by.as_deref().unwrap_or("-")
                );
            }
            Ok(r) if args.body => println!("{}", String::from_utf8_lossy(&r.body)),
            Ok(r) => println!(
                "{} {}",
                r.status.as_u16(),
                r.served_by.as_deref().unwrap_or("-")
            ),
            Err(e) => {
                failures += 1;
                println!("error {e}");
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} of {} requests failed", args.count);
    }
    Ok(())
}
