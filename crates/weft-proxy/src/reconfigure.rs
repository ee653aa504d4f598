//! A new model taken in: compiled into a snapshot that is swapped in
//! atomically (requests in flight keep the one they started with), then
//! the listeners made the ones it asks for.

use std::sync::Arc;
use std::time::Duration;

use weft_model::ProxyModel;

use crate::error::ProxyError;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::upstream;

/// Compiles and swaps in a model, keeping the runtime state of clusters
/// that did not change, then makes the listeners the ones it asks for.
/// A listener that cannot be bound is logged and tried again with the
/// next model; the model itself is applied.
pub async fn apply(
    shared: &Arc<Shared>,
    model: ProxyModel,
    version: String,
) -> Result<(), ProxyError> {
    swap(shared, model, version)?;
    let planned = crate::roles::plan(&shared.snapshot.load().model, shared);
    let drain = shared.config.drain.max(Duration::from_millis(1));
    match shared
        .listeners
        .reconcile(planned, &shared.config.workers, drain)
        .await
    {
        Ok(changes) => {
            for name in &changes.bound {
                tracing::info!(listener = %name, "listening");
            }
            for name in &changes.replaced {
                tracing::info!(listener = %name, "serving differently on the same socket");
            }
            for name in &changes.removed {
                tracing::info!(listener = %name, "stopped listening; its connections drain");
            }
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!(error = %e, "a listener the model asks for is not open");
            }
        }
    }
    Ok(())
}

/// Compiles and swaps in a model, keeping the runtime state of clusters
/// that did not change.
fn swap(shared: &Shared, model: ProxyModel, version: String) -> Result<(), ProxyError> {
    if let Some(mesh) = &shared.mesh {
        mesh.adopt_bundle(&model.security.trust_bundle);
    }
    let current = shared.snapshot.load();
    let client = Arc::new(
        upstream::ClientSide::new(
            &model.proxy,
            shared.mesh.clone(),
            shared.credentials.clone(),
            shared.config.source_ip(),
        )
        .with_egress(crate::policy::Egress::compile(
            model.security.network_egress.as_ref(),
        )),
    );
    let next = Snapshot::build(model, version, Some(&current), client)?;
    shared.snapshot.store(Arc::new(next));
    Ok(())
}
