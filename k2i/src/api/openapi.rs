//! `/v1/openapi.json`, generated from the handlers' annotations.

use super::{containers, host, json, proc, sysctl};
use axum::response::Response;
use dcos_core::model;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "k2i", description = "A host's processes, containers and kernel parameters as JSON over HTTPS. \
Authenticate with a client certificate from the fleet CA (mTLS) or a bearer token."),
    paths(
        host::healthz, host::summary, host::metrics,
        proc::list, proc::one, proc::by_cmd, proc::top,
        containers::list, containers::one,
        sysctl::list, sysctl::get, sysctl::put,
    ),
    components(schemas(
        model::Process, model::ProcList, model::ProcessDetail, model::Limit, model::HostSummary,
        model::Top, model::Container, model::ContainerRef, model::ContainerList, model::ContainerDetail,
        model::Runtime, model::SysctlValue, model::SysctlWrite, model::ErrorBody, model::ErrorDetail,
    )),
    modifiers(&Security),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3 document, without authentication.
pub async fn document() -> Response {
    json(&ApiDoc::openapi())
}
