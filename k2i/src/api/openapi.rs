//! `/v1/openapi.json`, generated from the handlers' annotations.

use super::{containers, host, json, proc, sysctl};
use axum::response::Response;
use dcos_core::model;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "k2i", description = "A host's processes, containers and kernel parameters as JSON over HTTPS. \
Authenticate with a client certificate from the fleet CA (mTLS) or a bearer token; a bearer token, when sent, must be valid."),
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
    modifiers(&Security, &ErrorResponses),
    security(("mtls" = []), ("bearer" = []))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "mtls",
            SecurityScheme::MutualTls {
                description: Some("a client certificate issued by the fleet CA".into()),
                extensions: None,
            },
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The public routes need neither.
        for (path, item) in doc.paths.paths.iter_mut() {
            if crate::auth::is_public(path) {
                for op in [&mut item.get, &mut item.put].into_iter().flatten() {
                    op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::default()]);
                }
            }
        }
    }
}

/// The error answers any request may get, added to every operation that does not list them
/// already: 400, 414 and 431 (a request that cannot be parsed), 401 and 429 (everything but
/// the public routes), and for a write 403, 404, 408 and 413.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = crate::auth::is_public(path);
            let write = item.put.is_some();
            let ops = [&mut item.get, &mut item.put].into_iter().flatten();
            for op in ops {
                let mut add = |status: &str, what: &str| {
                    op.responses.responses.entry(status.to_string()).or_insert_with(|| error(what).into());
                };
                add("400", "malformed request or parameter");
                add("414", "request line too long");
                add("431", "request headers too large");
                if path != "/healthz" {
                    add(
                        "429",
                        "too many requests in flight (server-wide or from this identity); `Retry-After: 1`",
                    );
                }
                if !public {
                    add("401", "no valid client certificate or bearer token (or an invalid token)");
                }
                if write && op.request_body.is_some() {
                    add("403", "not admin, or key not allow-listed");
                    add("404", "no such key");
                    add("408", "the body did not arrive in time");
                    add("413", "body too large");
                }
            }
        }
    }
}

/// The OpenAPI 3 document, without authentication.
pub async fn document() -> Response {
    json(&ApiDoc::openapi())
}
