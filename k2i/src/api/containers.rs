//! `/v1/containers` and `/v1/containers/{id}`.

use super::json;
use crate::error::ApiError;
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use dcos_core::model::{ContainerDetail, ContainerList};

/// Containers on this host, found from cgroups and OCI runtime state.
#[utoipa::path(get, path = "/v1/containers", tag = "containers",
    responses((status = 200, body = dcos_core::model::ContainerList), (status = 401, body = dcos_core::model::ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Response {
    let snap = state.sampler.current().await;
    json(&ContainerList {
        host: state.name.to_string(),
        dc: state.dc.to_string(),
        sampled_at: snap.sampled_at.clone(),
        containers: snap.containers.clone(),
    })
}

/// One container (by id, a unique id prefix, or name) with its processes.
#[utoipa::path(get, path = "/v1/containers/{id}", tag = "containers",
    params(("id" = String, Path, description = "container id, unique id prefix, or name")),
    responses((status = 200, body = dcos_core::model::ContainerDetail),
        (status = 400, description = "ambiguous prefix", body = dcos_core::model::ErrorBody),
        (status = 404, body = dcos_core::model::ErrorBody)))]
pub async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let snap = state.sampler.current().await;
    let exact = snap.containers.iter().find(|c| *c.id == *id || *c.name == *id);
    let container = match exact {
        Some(c) => c,
        None => {
            let matches: Vec<_> = snap.containers.iter().filter(|c| c.id.starts_with(id.as_str())).collect();
            match matches.as_slice() {
                [one] => *one,
                [] => return Err(ApiError::not_found(format!("no container {id:?} on {}", state.name))),
                many => {
                    return Err(ApiError::bad_request(
                        "ambiguous",
                        format!("{id:?} matches {} containers; give more of the id", many.len()),
                    ))
                }
            }
        }
    };
    let processes = snap
        .processes
        .iter()
        .filter(|p| p.container.as_ref().is_some_and(|c| c.id == container.id))
        .cloned()
        .collect();
    Ok(json(&ContainerDetail { container: container.clone(), processes }))
}
