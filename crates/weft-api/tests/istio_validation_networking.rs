//! Istio's validation of Gateway, Sidecar, DestinationRule, ServiceEntry,
//! WorkloadEntry and WorkloadGroup, rule by rule: each case is written
//! here from Istio's rule (istio/istio's `pkg/config/validation` and its
//! test tables), read and restated, not copied.

mod want;

use want::{check, Want};

#[test]
fn gateway_tls_options() {
    let sds = "mode: SIMPLE, credentialName: c";
    check(
        "suites",
        &https(&format!(
            "{{{sds}, cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, \"[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]\"]}}"
        )),
        Want::Clean,
    );
    check(
        "invalid suite",
        &https(&format!("{{{sds}, cipherSuites: [NOT-A-SUITE]}}")),
        Want::Warns("ignoring invalid cipher suites"),
    );
    check(
        "duplicate suite",
        &https(&format!(
            "{{{sds}, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]}}"
        )),
        Want::Warns("ignoring duplicate cipher suites"),
    );
    check(
        "suite rustls lacks",
        &https(&format!("{{{sds}, cipherSuites: [AES128-SHA]}}")),
        Want::Warns("weft does not offer"),
    );
    check(
        "old version without suites",
        &https(&format!("{{{sds}, minProtocolVersion: TLSV1_0}}")),
        Want::Warns("below TLSV1_2"),
    );
    // Istio has no rule for min above max; weft says the server can
    // never complete a handshake.
    check(
        "min above max",
        &https(&format!(
            "{{{sds}, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}}"
        )),
        Want::Warns("refuses every handshake"),
    );
    check(
        "versions",
        &https(&format!(
            "{{{sds}, minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_3}}"
        )),
        Want::Clean,
    );
    let hash = "DF:6F:F7:2F:E9:11:65:21:26:8F:65:68:FF:BD:60:FC:0F:94:D6:1F:A4:34:1E:D7:70:8A:A3:47:4B:8C:8F:9D";
    check(
        "pins",
        &https(&format!(
            "{{mode: MUTUAL, credentialName: c, verifyCertificateHash: [\"{hash}\"], verifyCertificateSpki: [\"NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A=\"]}}"
        )),
        Want::Clean,
    );
    check(
        "bad hash pin",
        &https("{mode: MUTUAL, credentialName: c, verifyCertificateHash: [abcd]}"),
        Want::Warns("not a SHA-256 certificate fingerprint"),
    );
    check(
        "bad spki pin",
        &https("{mode: MUTUAL, credentialName: c, verifyCertificateSpki: [abcd]}"),
        Want::Warns("not a SHA-256 SPKI pin"),
    );
}

fn dr(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: d, namespace: shop}}\nspec:\n  host: reviews\n{spec}")
}

fn tp(policy: &str) -> String {
    dr(&format!("  trafficPolicy:\n{policy}"))
}

#[test]
fn destination_rule_traffic_policies() {
    use Want::*;
    let cases: &[(&str, String, Want)] = &[
        // What Istio takes and weft used to refuse.
        ("upper-case subset", dr("  subsets:\n  - {name: V1, labels: {version: v1}}\n"), Clean),
        ("tcp idle timeout off", tp("    connectionPool: {tcp: {idleTimeout: 0s}}\n"), Clean),
        ("hash without a key", tp("    loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 1024}}}\n"), Unimplemented("ringHash")),
        ("source ip false", tp("    loadBalancer: {consistentHash: {useSourceIp: false}}\n"), Clean),
        ("istio mutual with files", tp("    tls: {mode: ISTIO_MUTUAL, caCertificates: /etc/ca.pem}\n"), Clean),
        ("tunnel in a subset", dr("  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy:\n      tunnel: {protocol: CONNECT, targetHost: proxy.example.com, targetPort: 3128}\n"), Unimplemented("tunnel")),
        ("port settings twice", tp("    portLevelSettings:\n    - {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n    - {port: {number: 80}, loadBalancer: {simple: ROUND_ROBIN}}\n"), Clean),
        ("credential and files, no mode", tp("    tls: {credentialName: c, caCertificates: /etc/ca.pem}\n"), Clean),
        ("failover without to", tp("    outlierDetection: {consecutive5xxErrors: 3}\n    loadBalancer: {localityLbSetting: {failover: [{from: us-east}]}}\n"), Clean),
        ("long label value", dr(&format!("  subsets:\n  - {{name: v1, labels: {{version: {}}}}}\n", "a".repeat(70))), Clean),
        ("selector value with a space", dr("  workloadSelector: {matchLabels: {app: \"a b\"}}\n"), Clean),
        ("odd sni", tp("    tls: {mode: SIMPLE, sni: foo_bar.example.com}\n"), Clean),
        // What Istio refuses.
        ("empty policy", tp("    {}\n"), Refused("traffic policy must have at least one field")),
        ("empty pool", tp("    connectionPool: {}\n"), Refused("connection pool must have at least one field")),
        ("port with nothing", tp("    portLevelSettings: [{port: {number: 80}}]\n"), Refused("port traffic policy must have at least one field")),
        ("port without port", tp("    portLevelSettings: [{loadBalancer: {simple: RANDOM}}]\n"), Refused("portTrafficPolicy must have valid port")),
        ("tunnel and proxy protocol", tp("    tunnel: {targetHost: proxy.example.com, targetPort: 3128}\n    proxyProtocol: {version: V1}\n"), Refused("must not be set together")),
        ("tunnel protocol", tp("    tunnel: {protocol: GET, targetHost: proxy.example.com, targetPort: 3128}\n"), Refused("tunnel protocol must be")),
        ("tunnel host", tp("    tunnel: {targetHost: \"bad host\", targetPort: 3128}\n"), Refused("tunnel target host")),
        ("proxy protocol version", tp("    proxyProtocol: {version: V3}\n"), Refused("proxy protocol version is invalid")),
        ("upgrade and client protocol", tp("    connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}\n"), Refused("use client protocol must not be true")),
        ("keepalive without timeout", tp("    connectionPool: {http: {http2KeepAlive: {interval: 10s}}}\n"), Refused("http2 keepalive timeout is required")),
        ("tcp keepalive time", tp("    connectionPool: {tcp: {tcpKeepalive: {time: 0.5ms}}}\n"), Refused("shorter than 1ms")),
        ("warmup without duration", tp("    loadBalancer: {warmup: {minimumPercent: 10}}\n"), Refused("duration is required")),
        ("warmup percent", tp("    loadBalancer: {warmup: {duration: 10s, minimumPercent: 101}}\n"), Refused("minimumPercent value should be")),
        ("warmup aggression", tp("    loadBalancer: {warmup: {duration: 10s, aggression: 0}}\n"), Refused("aggression should be greater than 0")),
        ("maglev not prime", tp("    loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 1000}}}\n"), Refused("tableSize must be a prime number")),
        ("maglev unset", tp("    loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {}}}\n"), Refused("tableSize must be set")),
        ("ring size twice", tp("    loadBalancer: {consistentHash: {httpHeaderName: x-user, minimumRingSize: 10, ringHash: {minimumRingSize: 10}}}\n"), Refused("only one of minimumRingSize")),
        ("cookie attributes", tp("    loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 0s, attributes: [{name: SameSite, value: Lax}, {name: SameSite, value: Strict}]}}}\n"), Refused("duplicate cookie attribute name")),
        ("locality and zone aware", tp("    loadBalancer: {localityLbSetting: {enabled: true}, zoneAwareLbSetting: {enabled: true}}\n"), Refused("only one of localityLbSetting and zoneAwareLbSetting")),
        ("locality weight 0", tp("    loadBalancer: {localityLbSetting: {distribute: [{from: us-east/*, to: {us-east/*: 0, us-west/*: 100}}]}}\n"), Refused("locality weight must be in range")),
        ("locality wildcard inside", tp("    loadBalancer: {localityLbSetting: {distribute: [{from: \"*/zone1\", to: {us-east/*: 100}}]}}\n"), Refused("must be in the end")),
        ("localities overlap", tp("    loadBalancer: {localityLbSetting: {distribute: [{from: us-east/*, to: {us-east/*: 100}}, {from: us-east/zone1, to: {us-east/*: 100}}]}}\n"), Refused("overlap with previous specified ones")),
        ("wildcard after a narrower locality", tp("    loadBalancer: {localityLbSetting: {distribute: [{from: us-west/zone1/*, to: {us-west/*: 100}}, {from: us-west/*, to: {us-west/*: 100}}, {from: \"*\", to: {us-west/*: 100}}]}}\n"), Clean),
        ("four-part locality", tp("    loadBalancer: {localityLbSetting: {distribute: [{from: a/b/c/d, to: {a/*: 100}}]}}\n"), Clean),
        ("failover wildcard", tp("    outlierDetection: {consecutive5xxErrors: 3}\n    loadBalancer: {localityLbSetting: {failover: [{from: \"us-*\", to: eu-west}]}}\n"), Refused("should not contain '*'")),
        ("failover and topology priority", tp("    loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}], failoverPriority: [topology.kubernetes.io/region]}}\n"), Refused("can not simultaneously set 'failover'")),
        ("zone aware topology priority", tp("    outlierDetection: {consecutive5xxErrors: 3}\n    loadBalancer: {zoneAwareLbSetting: {failoverPriority: [topology.kubernetes.io/zone]}}\n"), Refused("must not use topology label")),
        ("local origin without split", tp("    outlierDetection: {consecutiveLocalOriginFailures: 3}\n"), Refused("split external local origin errors is set to false")),
        ("skip verify with a CA", tp("    tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /etc/ca.pem}\n"), Refused("when insecureSkipVerify is set true")),
        ("credential and crl", tp("    tls: {mode: SIMPLE, credentialName: c, caCrl: /etc/crl.pem}\n"), Refused("CA CRL if credentialName is set")),
        ("mutual without key", tp("    tls: {mode: MUTUAL, clientCertificate: /etc/c.pem}\n"), Refused("private key required for mutual tls")),
        ("configmap in another namespace", tp("    tls: {mode: SIMPLE, credentialName: configmap://other/ca}\n"), Refused("namespace must match")),
        // What Istio warns about.
        ("deprecated consecutive errors", tp("    outlierDetection: {consecutiveErrors: -1}\n"), Warns("consecutive errors is deprecated")),
        ("deprecated ring size", tp("    loadBalancer: {consistentHash: {httpHeaderName: x-user, minimumRingSize: 10}}\n"), Warns("minimumRingSize is deprecated")),
        ("failover without outlier detection", tp("    loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}\n"), Warns("outlier detection policy must be provided for failover")),
        ("selector without labels", dr("  workloadSelector: {}\n"), Warns("workload selector specified without labels")),
    ];
    for (name, doc, want) in cases {
        check(name, doc, want.clone());
    }
}

fn se(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: e, namespace: shop}}\nspec:\n{spec}")
}

#[test]
fn service_entries_workload_entries_and_groups() {
    use Want::*;
    let http = "  ports: [{number: 80, name: http, protocol: HTTP}]\n";
    let cases: &[(&str, String, Want)] = &[
        ("static without endpoints", se(&format!("  hosts: [a.example.com]\n{http}  resolution: STATIC\n")), Clean),
        ("endpoint on another network", se(&format!("  hosts: [a.example.com]\n{http}  resolution: STATIC\n  endpoints: [{{network: west}}]\n")), Warns("address is unset with network")),
        ("none with endpoints", se(&format!("  hosts: [a.example.com]\n{http}  resolution: NONE\n  endpoints: [{{address: 127.0.0.1}}]\n")), Refused("no endpoints should be provided for resolution type NONE")),
        ("none with a selector", se(&format!("  hosts: [a.example.com]\n{http}  resolution: NONE\n  workloadSelector: {{labels: {{app: a}}}}\n")), Warns("workloadSelector should not be set")),
        ("round robin over two", se(&format!("  hosts: [a.example.com]\n{http}  resolution: DNS_ROUND_ROBIN\n  endpoints: [{{address: a1.example.com}}, {{address: a2.example.com}}]\n")), Refused("0 or 1 endpoint")),
        ("cidr with dns", se(&format!("  hosts: [a.example.com]\n  addresses: [127.0.0.0/24]\n{http}  resolution: DNS\n")), Refused("CIDR addresses are allowed only")),
        ("dns wildcard without endpoints", se(&format!("  hosts: [\"*.example.com\"]\n{http}  resolution: DNS\n")), Refused("hosts must be FQDN")),
        ("dns endpoint not a name", se(&format!("  hosts: [a.example.com]\n{http}  resolution: DNS\n  endpoints: [{{address: \"bad name\"}}]\n")), Refused("not a valid FQDN or an IP address")),
        ("static endpoint a name", se(&format!("  hosts: [a.example.com]\n{http}  resolution: STATIC\n  endpoints: [{{address: a.example.com}}]\n")), Refused("is not a valid IP address")),
        ("bad port name", se("  hosts: [a.example.com]\n  ports: [{number: 80, name: \"http_1\", protocol: HTTP}]\n  resolution: DNS\n"), Refused("port name \"http_1\" is invalid")),
        ("two hosts, tcp", se("  hosts: [a.example.com, b.example.com]\n  addresses: [127.0.0.1]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n  endpoints: [{address: 127.0.0.2}]\n"), Refused("multiple hosts provided with non-HTTP, non-TLS ports")),
        ("unix relative", se(&format!("  hosts: [a.example.com]\n{http}  resolution: STATIC\n  endpoints: [{{address: \"unix://relative.sock\"}}]\n")), Refused("not an absolute path")),
        ("unix with ports", se(&format!("  hosts: [a.example.com]\n{http}  resolution: STATIC\n  endpoints: [{{address: \"unix:///run/a.sock\", ports: {{http: 80}}}}]\n")), Refused("must not include ports")),
        ("unix two service ports", se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http2, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: \"unix:///run/a.sock\"}]\n"), Refused("exactly 1 service port required")),
        ("selector wildcard", se(&format!("  hosts: [a.example.com]\n{http}  resolution: STATIC\n  workloadSelector: {{labels: {{app: \"*\"}}}}\n")), Refused("wildcard is not supported in selector")),
        ("dynamic dns named host", se(&format!("  hosts: [a.example.com]\n{http}  resolution: DYNAMIC_DNS\n")), Refused("host must be wildcarded")),
        ("dynamic dns tcp", se("  hosts: [\"*.example.com\"]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: DYNAMIC_DNS\n"), Refused("only HTTP, TLS, GRPC, and HTTP2")),
        ("tcp without addresses, opted out", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: e, labels: {networking.istio.io/enable-autoallocate-ip: \"false\"}}\nspec:\n  hosts: [db.example.com]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: DNS\n".to_owned(), Warns("addresses are required for ports serving TCP")),
        ("several hosts, address, tls port", se("  hosts: [a.example.com, b.example.com]\n  addresses: [127.0.0.1]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n"), Warns("more than one host specified simultaneously")),
        ("workload entry four-part locality", "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: 127.0.0.1, locality: a/b/c/d, weight: 0}\n".into(), Clean),
        ("workload entry bad name", "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: \"vm:9443\"}\n".into(), Refused("not a valid FQDN or an IP address")),
        ("workload group template", "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: g}\nspec:\n  template: {address: 127.0.0.1, ports: {http: 0}}\n".into(), Clean),
        ("workload group probe", "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: g}\nspec:\n  template: {serviceAccount: vm}\n  probe: {periodSeconds: 5, httpGet: {path: /ready, port: 8080, scheme: HTTP, httpHeaders: [{name: x-probe, value: \"1\"}]}}\n".into(), Unimplemented("probe")),
        ("probe without method", "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: g}\nspec:\n  template: {serviceAccount: vm}\n  probe: {periodSeconds: 5}\n".into(), Refused("unknown health check method")),
        ("probe scheme", "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: g}\nspec:\n  template: {serviceAccount: vm}\n  probe: {httpGet: {port: 8080, scheme: FTP}}\n".into(), Refused("must be one of")),
        ("probe negative", "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: g}\nspec:\n  template: {serviceAccount: vm}\n  probe: {failureThreshold: -1, exec: {command: [\"true\"]}}\n".into(), Refused("failureThreshold cannot be negative")),
        ("probe exec empty", "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: g}\nspec:\n  template: {serviceAccount: vm}\n  probe: {exec: {}}\n".into(), Refused("exec.command is required")),
    ];
    for (name, doc, want) in cases {
        check(name, doc, want.clone());
    }
}

fn gw(servers: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: g}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}")
}

fn https(tls: &str) -> String {
    gw(&format!(
        "  - port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [a.example.com]\n    tls: {tls}\n"
    ))
}

#[test]
fn gateway_servers() {
    use Want::*;
    let cases: &[(&str, String, Want)] = &[
        // What Istio takes and weft used to refuse.
        ("unix bind", gw("  - port: {number: 0, name: uds, protocol: HTTP}\n    bind: unix:///run/gw.sock\n    hosts: [a.example.com]\n"), Clean),
        ("ip host", gw("  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [127.0.0.1, ns/127.0.0.2]\n"), Clean),
        ("upper-case namespace", gw("  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [Prod/a.example.com]\n"), Clean),
        ("zoned bind", gw("  - port: {number: 80, name: http, protocol: HTTP}\n    bind: ::1%lo\n    hosts: [a.example.com]\n"), Clean),
        ("odd selector", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  selector: {app: \"my gw\"}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n".into(), Clean),
        ("tls without mode", https("{}"), Clean),
        ("tls certificates", https("{mode: SIMPLE, tlsCertificates: [{serverCertificate: /c.pem, privateKey: /k.pem}]}"), Unimplemented("tlsCertificates")),
        ("credential and half a pair", https("{mode: SIMPLE, credentialName: c, serverCertificate: /c.pem}"), Accepted),
        ("http passthrough", gw("  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n    tls: {mode: PASSTHROUGH}\n"), Clean),
        ("ecdh curves", https("{mode: SIMPLE, credentialName: c, ecdhCurves: [X25519, P-256]}"), Clean),
        // What Istio warns about.
        ("passthrough with certificates", https("{mode: PASSTHROUGH, credentialName: c}"), Warns("does not use certificates")),
        ("credential without mode", https("{credentialName: c}"), Warns("does not use certificates")),
        ("redirect on https", https("{mode: SIMPLE, credentialName: c, httpsRedirect: true}"), Warns("httpsRedirect should only be used with http servers")),
        ("three certificates", https("{mode: SIMPLE, tlsCertificates: [{serverCertificate: /a, privateKey: /a}, {serverCertificate: /b, privateKey: /b}, {serverCertificate: /c, privateKey: /c}]}"), Warns("up to 2 server certificates")),
        ("curve weft lacks", https("{mode: SIMPLE, credentialName: c, ecdhCurves: [P-521]}"), Warns("refuses every handshake")),
        // What Istio refuses.
        ("dotted name", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw.v1}\nspec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n".into(), Refused("invalid gateway name")),
        ("short host", gw("  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [reviews]\n"), Refused("short names (non FQDN) are not allowed")),
        ("empty namespace", gw("  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [/a.example.com]\n"), Refused("cannot be empty")),
        ("tilde without semantics", gw("  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [~/a.example.com]\n"), Refused("invalid namespace value")),
        ("target port", gw("  - port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n    hosts: [a.example.com]\n"), Refused("targetPort has no impact on Gateways")),
        ("port without name", gw("  - port: {number: 80, protocol: HTTP}\n    hosts: [a.example.com]\n"), Refused("port name must be set")),
        ("unix with a port", gw("  - port: {number: 80, name: uds, protocol: HTTP}\n    bind: unix:///run/gw.sock\n    hosts: [a.example.com]\n"), Refused("port number must be 0 for unix domain socket")),
        ("grpc terminating", gw("  - port: {number: 80, name: grpc, protocol: GRPC}\n    hosts: [a.example.com]\n    tls: {mode: SIMPLE, credentialName: c}\n"), Refused("plain text HTTP ports")),
        ("tcp with tls", gw("  - port: {number: 31400, name: tcp, protocol: TCP}\n    hosts: [a.example.com]\n    tls: {mode: PASSTHROUGH}\n"), Refused("non HTTPS/TLS ports")),
        ("https without tls", gw("  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [a.example.com]\n"), Refused("server must have TLS settings")),
        ("istio mutual with a credential", https("{mode: ISTIO_MUTUAL, credentialName: c}"), Refused("ISTIO_MUTUAL TLS cannot have")),
        ("two certificate sources", https("{mode: SIMPLE, credentialName: c, credentialNames: [d]}"), Refused("only one of credentialName")),
        ("optional mutual without a CA", https("{mode: OPTIONAL_MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}"), Refused("requires a client CA bundle")),
        ("simple without a key", https("{mode: SIMPLE, serverCertificate: /c.pem}"), Refused("requires a private key")),
        ("crl with simple", https("{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}"), Refused("CRL is not supported with SIMPLE TLS")),
    ];
    for (name, doc, want) in cases {
        check(name, doc, want.clone());
    }
}

fn sidecar(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: s, namespace: shop}}\nspec:\n{spec}")
}

#[test]
fn sidecars() {
    use Want::*;
    let hosts = "    hosts: [./*]\n";
    let cases: &[(&str, String, Want)] = &[
        ("unix egress", sidecar(&format!("  egress:\n  - port: {{number: 0, protocol: HTTP, name: uds}}\n    bind: unix:///run/app.sock\n    captureMode: NONE\n{hosts}")), Unimplemented("egress")),
        ("exclude a namespace", sidecar("  egress:\n  - hosts: [\"~ns1/*\", \"*/*\"]\n"), Clean),
        ("ingress tls", sidecar("  ingress:\n  - port: {number: 8443, protocol: HTTPS, name: https}\n    defaultEndpoint: 127.0.0.1:8080\n    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}\n"), Unimplemented("ingress")),
        ("empty", sidecar("  {}\n"), Refused("sidecar: empty configuration provided")),
        ("short egress host", sidecar("  egress:\n  - hosts: [./reviews]\n"), Refused("short names")),
        ("catch-all not last", sidecar(&format!("  egress:\n  - hosts: [./*]\n  - port: {{number: 80, protocol: HTTP, name: http}}\n{hosts}")), Refused("should be the last listener")),
        ("duplicate egress ports", sidecar(&format!("  egress:\n  - port: {{number: 80, protocol: HTTP, name: a}}\n{hosts}  - port: {{number: 80, protocol: HTTP, name: b}}\n{hosts}")), Refused("ports on IP bound listeners must be unique")),
        ("port 0 without a socket", sidecar(&format!("  egress:\n  - port: {{number: 0, protocol: HTTP, name: uds}}\n{hosts}")), Refused("must have a unix domain socket bind address")),
        ("socket with iptables", sidecar(&format!("  egress:\n  - port: {{number: 0, protocol: HTTP, name: uds}}\n    bind: unix:///run/a.sock\n    captureMode: IPTABLES\n{hosts}")), Refused("captureMode must be DEFAULT/NONE")),
        ("bad port name", sidecar(&format!("  egress:\n  - port: {{number: 80, protocol: HTTP, name: \"a_b\"}}\n{hosts}")), Refused("port name \"a_b\" is invalid")),
        ("bind not an ip", sidecar(&format!("  egress:\n  - port: {{number: 80, protocol: HTTP, name: http}}\n    bind: localhost\n{hosts}")), Refused("is not a valid IP")),
        ("ingress target port", sidecar("  ingress:\n  - port: {number: 80, protocol: HTTP, name: http, targetPort: 8080}\n    defaultEndpoint: 127.0.0.1:8080\n"), Refused("targetPort has no impact on Sidecars")),
        ("default endpoint host", sidecar("  ingress:\n  - port: {number: 80, protocol: HTTP, name: http}\n    defaultEndpoint: 127.0.0.2:8080\n"), Refused("defaultEndpoint must be of form")),
        ("ingress tls credential", sidecar("  ingress:\n  - port: {number: 8443, protocol: HTTPS, name: https}\n    tls: {mode: SIMPLE, credentialName: c}\n"), Refused("credentialName is not currently supported")),
        ("ingress tls on http", sidecar("  ingress:\n  - port: {number: 80, protocol: HTTP, name: http}\n    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}\n"), Refused("non HTTPS/TLS ports")),
        ("empty inbound pool", sidecar("  inboundConnectionPool: {}\n"), Refused("connection pool must have at least one field")),
        ("egress proxy with registry only", sidecar("  outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: egress.example.com, port: {number: 3128}}}\n"), Refused("only with ALLOW_ANY")),
        ("egress proxy without port", sidecar("  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress.example.com}}\n"), Refused("port must be non-nil")),
        ("duplicate host", sidecar("  egress:\n  - hosts: [ns1/a.example.com, ns1/a.example.com]\n"), Warns("duplicated egress host")),
        ("all and more", sidecar("  egress:\n  - hosts: [\"*/*\", ns1/a.example.com]\n"), Warns("`*/*` host select all resources")),
        ("selector without labels", sidecar("  workloadSelector: {}\n  egress:\n  - hosts: [./*]\n"), Warns("workload selector specified without labels")),
        ("http pool on tcp", sidecar("  ingress:\n  - port: {number: 5432, protocol: TCP, name: tcp}\n    connectionPool: {http: {maxRetries: 1}}\n"), Warns("only TCP settings will apply")),
    ];
    for (name, doc, want) in cases {
        check(name, doc, want.clone());
    }
}
