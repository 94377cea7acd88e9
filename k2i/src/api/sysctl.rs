//! `/v1/sysctl`: read any key, write only allow-listed keys as admin, audit every write.

use super::{json, query_pairs};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::server::AppState;
use crate::sysctl::{audit, AuditRecord};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use dcos_core::model::{SysctlValue, SysctlWrite};

/// Kernel parameters whose key starts with `prefix`.
#[utoipa::path(get, path = "/v1/sysctl", tag = "sysctl",
    params(("prefix" = Option<String>, Query, description = "dotted key prefix, e.g. net.ipv4")),
    responses((status = 200, description = "key to value", body = Object), (status = 400, body = dcos_core::model::ErrorBody)))]
pub async fn list(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let mut prefix = String::new();
    for (k, v) in query_pairs(raw)? {
        match k.as_str() {
            "prefix" => prefix = v,
            other => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!("unknown query parameter {other:?} (expected prefix)"),
                ))
            }
        }
    }
    let sysctl = state.sysctl.clone();
    let map = tokio::task::spawn_blocking(move || sysctl.list(&prefix)).await??;
    Ok(json(&map))
}

/// One kernel parameter.
#[utoipa::path(get, path = "/v1/sysctl/{key}", tag = "sysctl",
    params(("key" = String, Path, description = "dotted key, e.g. vm.swappiness")),
    responses((status = 200, body = dcos_core::model::SysctlValue), (status = 404, body = dcos_core::model::ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(key): Path<String>) -> Result<Response, ApiError> {
    let (key, value) = state.sysctl.get(&key)?;
    Ok(json(&SysctlValue { key, value, old_value: None }))
}

/// Sets a kernel parameter: admin only, only keys matching `--sysctl-allow`; audited.
#[utoipa::path(put, path = "/v1/sysctl/{key}", tag = "sysctl",
    params(("key" = String, Path, description = "dotted key")),
    request_body = dcos_core::model::SysctlWrite,
    responses(
        (status = 200, description = "written; carries the old value", body = dcos_core::model::SysctlValue),
        (status = 400, description = "a malformed body, key or value (a value is one line: no control character but tab)", body = dcos_core::model::ErrorBody),
        (status = 403, description = "not admin, or key not allow-listed", body = dcos_core::model::ErrorBody),
        (status = 413, body = dcos_core::model::ErrorBody),
        (status = 422, description = "the kernel refused the value", body = dcos_core::model::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // The role and the declared size were checked before the body was read
    // (`limits::write_gate`); checked again here, where the write is.
    caller.require_write("writing a sysctl")?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            crate::limits::too_large()
        } else {
            ApiError::bad_request("bad_body", e.body_text())
        }
    })?;
    let write: SysctlWrite = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("expected {{\"value\": \"...\"}}: {e}")))?;
    let (canonical, _) = state.sysctl.resolve(&key)?;
    // Every attempt past authentication is audited, refused or not.
    let log = |old: Option<&str>, result: &str| {
        audit(
            state.audit_log.as_deref().map(|p| p.as_path()),
            &AuditRecord {
                time: now(),
                who: &caller.name,
                role: caller.role.as_str(),
                via: caller.via,
                key: &canonical,
                old,
                new: &write.value,
                result,
            },
        );
        state.metrics.sysctl_write(result);
    };
    if let Err(e) = crate::sysctl::check_value(&write.value) {
        log(None, "bad_value");
        return Err(e.into());
    }
    if !state.sysctl_allow.allows(&canonical) {
        log(None, "not_allowed");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_allowed",
            format!(
                "{canonical} is not in this host's --sysctl-allow list ({})",
                state.sysctl_allow.patterns().join(",")
            ),
        ));
    }
    let sysctl = state.sysctl.clone();
    let (target, value) = (canonical.clone(), write.value.clone());
    let result = tokio::task::spawn_blocking(move || {
        sysctl.set(&target, &value).map(|(k, old)| (k, old, sysctl.get(&target)))
    })
    .await?;
    match result {
        Ok((key, old, now_value)) => {
            log(Some(&old), "ok");
            let value = now_value.map(|(_, v)| v).unwrap_or(write.value.clone());
            Ok(json(&SysctlValue { key, value, old_value: Some(old) }))
        }
        Err(e) => {
            log(None, "failed");
            Err(e.into())
        }
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
