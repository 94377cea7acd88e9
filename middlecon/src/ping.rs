//! The built-in `dcos.ping` service: every middlecon answers it with its name, datacenter
//! and clock, so any host can be probed and its clock compared.
//!
//! The reply payload is JSON: `{"name": "...", "dc": "...", "unix_ms": 1700000000000}`.

use crate::peer::{AppError, Request, Response, Service, ServiceFuture};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// The service name.
pub const SERVICE: &str = "dcos.ping";

/// What `dcos.ping` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub name: String,
    pub dc: String,
    /// The responder's clock when it answered, milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

/// The `dcos.ping` responder of one host.
pub struct Ping {
    name: String,
    dc: String,
}

impl Ping {
    pub fn new(name: impl Into<String>, dc: impl Into<String>) -> Ping {
        Ping { name: name.into(), dc: dc.into() }
    }
}

impl Service for Ping {
    fn call(&self, _request: Request) -> ServiceFuture {
        let pong = Pong {
            name: self.name.clone(),
            dc: self.dc.clone(),
            unix_ms: crate::peer::unix_ms(SystemTime::now()),
        };
        Box::pin(async move {
            let payload = serde_json::to_vec(&pong).map_err(|e| AppError::new(e.to_string()))?;
            Ok(Response { payload, ..Response::default() })
        })
    }
}
