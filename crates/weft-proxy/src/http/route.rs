//! The route stage, a pure function of the compiled tables and the
//! request: route table → virtual host → the first route that matches.

use std::collections::HashMap;

use super::error::{Error, ErrorKind};
use crate::facts::RequestFacts;
use crate::snapshot::{RouteRt, TableRt};

/// The port a client that uses the proxy as `HTTP_PROXY` asked for: the
/// authority's, else 80.
pub fn requested_port(authority: &str) -> u32 {
    authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u32>().ok())
        .unwrap_or(80)
}

/// The route for `req` in table `table` (which serves `port`).
pub fn select<'s>(
    tables: &'s HashMap<String, TableRt>,
    table: &str,
    port: u32,
    req: &RequestFacts<'_>,
) -> Result<&'s RouteRt, Error> {
    let Some(rt) = tables.get(table) else {
        return Err(Error::new(
            ErrorKind::NoRoute,
            format!("no route table for port {port}: no service in the mesh listens there"),
        ));
    };
    let authority = req.authority;
    let Some(vh) = rt.find(authority).or_else(|| rt.find(req.host)) else {
        return Err(Error::new(
            ErrorKind::NoRoute,
            format!("no virtual host for {authority:?} on port {port}"),
        ));
    };
    vh.routes
        .iter()
        .find(|r| r.matches(req, port))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NoRoute,
                format!(
                    "no route of {} matched {} {}",
                    vh.name, req.method, req.path
                ),
            )
        })
}

/// Whether table `table` has a virtual host for `req`'s authority or
/// host (a route of it may still not match).
pub fn knows_host(tables: &HashMap<String, TableRt>, table: &str, req: &RequestFacts<'_>) -> bool {
    tables.get(table).is_some_and(|rt| {
        rt.find(req.authority)
            .or_else(|| rt.find(req.host))
            .is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::{requested_port, select};
    use crate::facts::RequestFacts;
    use crate::snapshot::TableRt;
    use std::collections::HashMap;
    use weft_model::{Route, RouteAction, RouteMatch, RouteTable, StrMatch, VirtualHost};

    fn route(name: &str, prefix: Option<&str>) -> Route {
        Route {
            name: name.into(),
            origin: name.into(),
            matches: prefix
                .map(|p| {
                    vec![RouteMatch {
                        uri: Some(StrMatch::Prefix(p.into())),
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            action: RouteAction::Forward(Vec::new()),
            ..crate::roles::sidecar::inbound_route(0)
        }
    }

    fn tables() -> HashMap<String, TableRt> {
        let table = RouteTable {
            name: "9080".into(),
            virtual_hosts: vec![std::sync::Arc::new(VirtualHost {
                name: "reviews.default.svc.cluster.local:9080".into(),
                domains: vec!["reviews".into(), "reviews:9080".into()],
                routes: vec![
                    route("v2-for-jason", Some("/jason")),
                    route("default", None),
                ],
            })],
        };
        [(
            "9080".to_owned(),
            TableRt::compile(&table).expect("compiles"),
        )]
        .into_iter()
        .collect()
    }

    fn facts<'a>(req: &'a http::Request<()>) -> RequestFacts<'a> {
        RequestFacts::of(req, "127.0.0.1:1".parse().expect("addr"))
    }

    #[test]
    fn table_then_virtual_host_then_first_matching_route() {
        let t = tables();
        let get = |uri: &str| http::Request::get(uri).body(()).expect("request");
        let name = |uri: &str| {
            let req = get(uri);
            select(&t, "9080", 9080, &facts(&req))
                .map(|r| r.route.name.clone())
                .map_err(|e| (e.status().as_u16(), e.reason))
        };
        assert_eq!(
            name("http://reviews:9080/jason/1"),
            Ok("v2-for-jason".into())
        );
        assert_eq!(name("http://reviews/other"), Ok("default".into()));
        let (status, why) = name("http://ratings:9080/").expect_err("no host");
        assert_eq!(status, 404);
        assert!(why.contains("no virtual host"), "{why}");
        let req = get("http://reviews:9080/");
        let Err(e) = select(&t, "8080", 8080, &facts(&req)) else {
            panic!("a table that does not exist was found");
        };
        assert!(e.reason.contains("no route table for port 8080"));
        assert_eq!(
            (requested_port("reviews:9080"), requested_port("reviews")),
            (9080, 80)
        );
    }
}
