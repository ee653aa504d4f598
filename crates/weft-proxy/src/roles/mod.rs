//! Roles assemble parts. A sidecar is an outbound HTTP listener, inbound
//! listeners on workload ports, TCP listeners for TCP services and the
//! mTLS tunnel port; a gateway is a listener per Gateway port. Each says,
//! in an [`crate::http::listener::HttpListener`], what the request stages
//! do for it, and hands the accept loop what serves a connection. The
//! HTTP, policy, upstream and L4 parts never ask which role they serve.

pub mod captured;
pub mod gateway;
pub mod sidecar;

use std::net::SocketAddr;
use std::sync::Arc;

use weft_model::{Direction, ListenerTarget, ProxyModel};

use crate::listen::set::Planned;
use crate::shared::Shared;

/// The listeners `model` declares that the runtime configuration gives an
/// address, each with what serves its connections.
pub fn plan(model: &ProxyModel, shared: &Arc<Shared>) -> Vec<Planned> {
    let config = &shared.config;
    let mut out = Vec::new();
    for l in &model.listeners {
        // A gateway's passthrough port (TLS by SNI, or TCP) binds where
        // its port does.
        let bind = match l.direction {
            Direction::Gateway => config.gateway_bind(l.port),
            _ => config.binds.get(&l.name).copied(),
        };
        if let (ListenerTarget::Tcp(_), Some(addr)) = (&l.target, bind) {
            let serve = match l.direction {
                Direction::Gateway => {
                    gateway::on_passthrough(shared.clone(), l.name.clone(), l.port)
                }
                _ => crate::l4::tcp::on_connection(shared.clone(), l.name.clone()),
            };
            out.push(Planned {
                name: l.name.clone(),
                addr,
                shape: "tcp".into(),
                serve,
                what: l.name.clone(),
                socket: Default::default(),
            });
        }
    }
    if let Some(addr) = config.outbound {
        if model
            .listeners
            .iter()
            .any(|l| l.direction == Direction::Outbound)
        {
            let listener = sidecar::outbound();
            out.push(Planned {
                name: "outbound".to_owned(),
                addr,
                shape: "outbound".into(),
                serve: crate::listen::downstream::on_connection(shared.clone(), listener),
                what: "outbound".into(),
                socket: Default::default(),
            });
        }
    }
    for l in &model.listeners {
        match (&l.direction, &l.target) {
            // Under capture the application holds its ports itself and
            // the kernel hands their connections to the inbound capture
            // port.
            (Direction::Inbound, ListenerTarget::Local { .. })
                if config.captured_inbound.is_none() =>
            {
                if let (Some(ip), true) = (config.inbound_ip, config.apps.contains_key(&l.port)) {
                    out.push(Planned {
                        name: l.name.clone(),
                        addr: SocketAddr::new(ip, l.port as u16),
                        shape: format!("inbound {:?}", l.protocol),
                        serve: sidecar::on_plaintext(shared.clone(), l.port, l.protocol),
                        what: l.name.clone(),
                        socket: Default::default(),
                    });
                }
            }
            (Direction::Gateway, ListenerTarget::Routes(table)) => {
                if let Some(addr) = config.gateway_bind(l.port) {
                    let listener = gateway::listener(table, l.port);
                    out.push(Planned {
                        name: l.name.clone(),
                        addr,
                        shape: format!("gateway {table}"),
                        serve: gateway::on_connection(shared.clone(), listener, l.port),
                        what: l.name.clone(),
                        socket: Default::default(),
                    });
                }
            }
            _ => {}
        }
    }
    if let Some(addr) = config.captured_outbound {
        out.push(Planned {
            name: "captured-outbound".to_owned(),
            addr,
            shape: "captured outbound".into(),
            serve: captured::on_outbound(shared.clone()),
            what: "captured outbound traffic".into(),
            socket: Default::default(),
        });
    }
    if let Some(addr) = config.captured_inbound {
        out.push(Planned {
            name: "captured-inbound".to_owned(),
            addr,
            shape: "captured inbound".into(),
            serve: captured::on_inbound(shared.clone()),
            what: "captured inbound traffic".into(),
            // TPROXY delivers to a transparent socket only.
            socket: crate::sockets::SocketOptions {
                transparent: config.tproxy,
                ..Default::default()
            },
        });
    }
    if let (Some(addr), Some(mesh)) = (config.tunnel, shared.mesh.clone()) {
        out.push(Planned {
            name: "tunnel".to_owned(),
            addr,
            shape: "tunnel".into(),
            serve: crate::identity::tunnel::on_connection(shared.clone(), mesh),
            what: "the mTLS tunnel".into(),
            socket: Default::default(),
        });
    }
    out
}
