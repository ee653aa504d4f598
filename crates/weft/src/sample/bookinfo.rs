//! Istio's bookinfo, rebuilt: productpage calls details and reviews;
//! reviews v2 and v3 call ratings (black and red stars); v1 shows no
//! stars. Behaviour that Istio's tasks rely on is kept: productpage
//! forwards `end-user` and the tracing headers, gives reviews 3 s with one
//! retry (so a 7 s ratings delay fails the page as Istio's docs say), and
//! names the reviews instance that answered.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::client;
use super::Common;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    Productpage,
    Details,
    Reviews,
    Ratings,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// The reviews version: v1 (no stars), v2 (black stars), v3 (red stars).
    #[arg(long, env = "WEFT_VERSION", default_value = "v1")]
    pub version: String,
    /// Where other services are reached (host:port authorities).
    #[arg(long, env = "DETAILS_AUTHORITY", default_value = "details:9080")]
    pub details: String,
    #[arg(long, env = "REVIEWS_AUTHORITY", default_value = "reviews:9080")]
    pub reviews: String,
    #[arg(long, env = "RATINGS_AUTHORITY", default_value = "ratings:9080")]
    pub ratings: String,
}

type Body = Full<Bytes>;

pub async fn run(service: Service, args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.common.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.common.listen))?;
    eprintln!(
        "bookinfo {service:?} {} listening on {}",
        args.common.name,
        listener.local_addr()?
    );
    let args = Arc::new(args);
    loop {
        let (stream, _) = listener.accept().await?;
        let args = args.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(service, args.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
    name: &str,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(name) {
        r.headers_mut().insert("x-served-by", v);
    }
    r
}

fn json(v: &serde_json::Value, name: &str) -> Response<Body> {
    reply(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
        name,
    )
}

async fn handle(
    service: Service,
    args: Arc<Args>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let c = &args.common;
    eprintln!(
        "{} {} {} end-user={}",
        c.name,
        req.method(),
        req.uri().path(),
        req.headers()
            .get("end-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    );
    if c.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(c.latency_ms)).await;
    }
    if c.fail_fraction > 0.0 && fastrand::f64() < c.fail_fraction {
        return Ok(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            r#"{"error": "injected failure"}"#,
            &c.name,
        ));
    }
    let path = req.uri().path().to_owned();
    if path == "/health" || path == "/healthz" {
        return Ok(json(
            &serde_json::json!({"status": format!("{service:?} is healthy")}),
            &c.name,
        ));
    }
    let resp = match service {
        Service::Details => details(&path, &c.name),
        Service::Ratings => ratings(&path, &c.name),
        Service::Reviews => reviews(&args, &path, req.headers()).await,
        Service::Productpage => productpage(&args, req).await,
    };
    Ok(resp)
}

fn book_id(path: &str, prefix: &str) -> Option<u32> {
    path.strip_prefix(prefix)?.trim_matches('/').parse().ok()
}

fn details(path: &str, name: &str) -> Response<Body> {
    match book_id(path, "/details") {
        Some(id) => json(
            &serde_json::json!({
                "id": id,
                "author": "William Shakespeare",
                "year": 1595,
                "type": "paperback",
                "pages": 200,
                "publisher": "PublisherA",
                "language": "English",
                "ISBN-10": "1234567890",
                "ISBN-13": "123-1234567890",
            }),
            name,
        ),
        None => reply(
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error": "please provide numeric product id"}"#,
            name,
        ),
    }
}

fn ratings(path: &str, name: &str) -> Response<Body> {
    match book_id(path, "/ratings") {
        Some(id) => json(
            &serde_json::json!({"id": id, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}),
            name,
        ),
        None => reply(
            StatusCode::BAD_REQUEST,
            "application/json",
            r#"{"error": "please provide numeric product ID"}"#,
            name,
        ),
    }
}

async fn reviews(args: &Args, path: &str, headers: &HeaderMap) -> Response<Body> {
    let name = &args.common.name;
    let Some(id) = book_id(path, "/reviews") else {
        return reply(
            StatusCode::BAD_REQUEST,
            "application/json",
            r#"{"error": "please provide numeric product ID"}"#,
            name,
        );
    };
    let color = match args.version.as_str() {
        "v2" => Some("black"),
        "v3" => Some("red"),
        _ => None,
    };
    let mut reviews = vec![
        serde_json::json!({"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"}),
        serde_json::json!({"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."}),
    ];
    if let Some(color) = color {
        // Istio's reviews waits up to 10 s for ratings (2.5 s in v3).
        let timeout = if args.version == "v3" {
            Duration::from_millis(2500)
        } else {
            Duration::from_secs(10)
        };
        let ratings = client::get(&args.ratings, &format!("/ratings/{id}"), headers, timeout).await;
        let stars: Option<serde_json::Value> = match ratings {
            Ok(r) if r.status == StatusCode::OK => {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .map(|v| v["ratings"].clone())
            }
            _ => None,
        };
        for (i, r) in reviews.iter_mut().enumerate() {
            let key = format!("Reviewer{}", i + 1);
            r["rating"] = match &stars {
                Some(s) => serde_json::json!({"stars": s[&key], "color": color}),
                None => serde_json::json!({"error": "Ratings service is currently unavailable"}),
            };
        }
    }
    json(
        &serde_json::json!({"id": id.to_string(), "podname": name, "clustername": "null", "reviews": reviews}),
        name,
    )
}

/// The user, as Istio's productpage knows it: from its login cookie, an
/// `end-user` header, or `?u=` for scripts.
fn user_of(req: &Request<Incoming>) -> Option<String> {
    let cookie = req
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix("user=").map(str::to_owned));
    cookie
        .or_else(|| {
            req.headers()
                .get("end-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .or_else(|| {
            req.uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("u=").map(str::to_owned))
        })
        .filter(|u| !u.is_empty())
}

async fn productpage(args: &Args, req: Request<Incoming>) -> Response<Body> {
    let name = &args.common.name;
    let path = req.uri().path().to_owned();
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/") => reply(StatusCode::OK, "text/html", INDEX, name),
        ("POST", "/login") => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let user = String::from_utf8_lossy(&body)
                .split('&')
                .find_map(|kv| kv.strip_prefix("username=").map(str::to_owned))
                .unwrap_or_default();
            let mut r = reply(StatusCode::FOUND, "text/html", "", name);
            r.headers_mut()
                .insert("location", HeaderValue::from_static("/productpage"));
            if let Ok(v) = HeaderValue::from_str(&format!("user={user}; Path=/")) {
                r.headers_mut().insert("set-cookie", v);
            }
            r
        }
        (_, "/logout") => {
            let mut r = reply(StatusCode::FOUND, "text/html", "", name);
            r.headers_mut()
                .insert("location", HeaderValue::from_static("/productpage"));
            r.headers_mut().insert(
                "set-cookie",
                HeaderValue::from_static("user=; Path=/; Max-Age=0"),
            );
            r
        }
        ("GET", "/api/v1/products") => json(
            &serde_json::json!([{"id": 0, "title": "The Comedy of Errors", "descriptionHtml": "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays."}]),
            name,
        ),
        ("GET", p) if p.starts_with("/static") => reply(
            StatusCode::OK,
            "text/css",
            "body { font-family: sans-serif; }\n",
            name,
        ),
        ("GET", "/productpage") => page(args, &req).await,
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n", name),
    }
}

async fn page(args: &Args, req: &Request<Incoming>) -> Response<Body> {
    let user = user_of(req);
    let mut headers = req.headers().clone();
    if let Some(u) = &user {
        if let Ok(v) = HeaderValue::from_str(u) {
            headers.insert("end-user", v);
        }
    }
    let details = client::get(
        &args.details,
        "/details/0",
        &headers,
        Duration::from_secs(3),
    )
    .await;
    // Istio's productpage: 3 s timeout, one retry.
    let mut reviews = client::get(
        &args.reviews,
        "/reviews/0",
        &headers,
        Duration::from_secs(3),
    )
    .await;
    if !matches!(&reviews, Ok(r) if r.status == StatusCode::OK) {
        reviews = client::get(
            &args.reviews,
            "/reviews/0",
            &headers,
            Duration::from_secs(3),
        )
        .await;
    }
    let details_html = match &details {
        Ok(r) if r.status == StatusCode::OK => {
            let d: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            format!(
                "<h4>Book Details</h4><dl><dt>Type:</dt><dd>{}</dd><dt>Pages:</dt><dd>{}</dd><dt>Publisher:</dt><dd>{}</dd><dt>Language:</dt><dd>{}</dd><dt>ISBN-10:</dt><dd>{}</dd><dt>ISBN-13:</dt><dd>{}</dd></dl>",
                d["type"].as_str().unwrap_or(""), d["pages"], d["publisher"].as_str().unwrap_or(""), d["language"].as_str().unwrap_or(""), d["ISBN-10"].as_str().unwrap_or(""), d["ISBN-13"].as_str().unwrap_or("")
            )
        }
        _ => "<h4>Error fetching product details!</h4><p>Sorry, product details are currently unavailable for this book.</p>".to_owned(),
    };
    let (reviews_html, served_by) = match &reviews {
        Ok(r) if r.status == StatusCode::OK => {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let mut html = String::from("<h4>Book Reviews</h4>");
            for rev in v["reviews"].as_array().into_iter().flatten() {
                html.push_str(&format!("<blockquote><p>{}</p><small>{}</small>", rev["text"].as_str().unwrap_or(""), rev["reviewer"].as_str().unwrap_or("")));
                if let Some(stars) = rev["rating"]["stars"].as_u64() {
                    let color = rev["rating"]["color"].as_str().unwrap_or("black");
                    html.push_str(&format!("<font color=\"{color}\" class=\"stars\">"));
                    for _ in 0..stars {
                        html.push_str("<span class=\"glyphicon glyphicon-star\">&#9733;</span>");
                    }
                    html.push_str("</font>");
                } else if let Some(err) = rev["rating"]["error"].as_str() {
                    html.push_str(&format!("<p><i>{err}</i></p>"));
                }
                html.push_str("</blockquote>");
            }
            (html, v["podname"].as_str().unwrap_or("unknown").to_owned())
        }
        _ => ("<h4>Error fetching product reviews!</h4><p>Sorry, product reviews are currently unavailable for this book.</p>".to_owned(), "none".to_owned()),
    };
    let login = match &user {
        Some(u) => format!("<p>signed in as <b>{u}</b> <a href=\"/logout\">sign out</a></p>"),
        None => "<form method=\"post\" action=\"/login\"><input name=\"username\" placeholder=\"user\"><input name=\"passwd\" type=\"password\" placeholder=\"password\"><button>Sign in</button></form>".to_owned(),
    };
    let html = format!(
        "<!DOCTYPE html><html><head><title>Simple Bookstore App</title><link rel=\"stylesheet\" href=\"/static/bookinfo.css\"></head><body><h2>The Comedy of Errors</h2>{login}<p>Summary: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays.</p><div class=\"details\">{details_html}</div><div class=\"reviews\">{reviews_html}</div><p class=\"served-by\">Reviews served by: <u>{served_by}</u></p></body></html>\n"
    );
    reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        html,
        &args.common.name,
    )
}

const INDEX: &str = "<!DOCTYPE html><html><head><title>Simple Bookstore App</title></head><body><h3>Hello! This is a simple bookstore application consisting of three services as shown below</h3><p><a href=\"/productpage?u=normal\">Normal user</a> | <a href=\"/productpage?u=test\">Test user</a></p></body></html>\n";
