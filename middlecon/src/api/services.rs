//! The `Services` gRPC service over this host's services ([`crate::services`]): `Create`
//! and `Remove` need the admin role (or the local socket); `List` and `Show` are open to
//! every role. Refusals are statuses with their [`crate::workloads::ErrorCode`], as for
//! workloads.

use super::workloads::{admit, status};
use crate::access::Caller;
use crate::services::{pool, InstanceView, ServiceSpec, Services, Summary};
use crate::workloads::WorkloadError;
use dcos_proto::v1 as pb;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Serves `Services` over this host's services.
#[derive(Clone)]
pub struct ServicesApi {
    services: Arc<Services>,
    host: String,
}

impl ServicesApi {
    pub fn new(services: Arc<Services>, host: &str) -> ServicesApi {
        ServicesApi { services, host: host.to_string() }
    }

    /// The services' counters as Prometheus text.
    pub fn metrics(&self) -> String {
        self.services.metrics_text()
    }
}

fn ms(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_millis() as u64)
}

fn from_pb(s: pb::ServiceSpec) -> Result<ServiceSpec, WorkloadError> {
    let port = u16::try_from(s.port)
        .map_err(|_| WorkloadError::Invalid(format!("port: {} is not a TCP port", s.port)))?;
    let after = |v: u64| (v > 0).then(|| Duration::from_millis(v));
    Ok(ServiceSpec {
        name: s.name,
        rootfs: s.rootfs.into(),
        port,
        hosts: s.hosts,
        runtime: s.runtime,
        memory_bytes: s.memory_bytes,
        cpus: s.cpus,
        env: s.env,
        command: s.command,
        min: s.min,
        max: s.max,
        idle_stop: after(s.idle_stop_ms),
        target_inflight: s.target_inflight,
        max_age: after(s.max_age_ms),
        max_requests: s.max_requests,
        drain: Duration::from_millis(s.drain_ms),
        prestart: s.prestart,
        start_timeout: after(s.start_timeout_ms).unwrap_or(crate::services::spec::DEFAULT_START_TIMEOUT),
    })
}

fn spec_to_pb(s: &ServiceSpec) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: s.name.clone(),
        rootfs: s.rootfs.display().to_string(),
        port: s.port.into(),
        hosts: s.hosts.clone(),
        runtime: s.runtime.clone(),
        memory_bytes: s.memory_bytes,
        cpus: s.cpus,
        env: s.env.clone(),
        command: s.command.clone(),
        min: s.min,
        max: s.max,
        idle_stop_ms: ms(s.idle_stop),
        target_inflight: s.target_inflight,
        max_age_ms: ms(s.max_age),
        max_requests: s.max_requests,
        drain_ms: s.drain.as_millis() as u64,
        prestart: s.prestart,
        start_timeout_ms: s.start_timeout.as_millis() as u64,
    }
}

fn summary_to_pb(s: &Summary) -> pb::ServiceSummary {
    pb::ServiceSummary {
        spec: Some(spec_to_pb(&s.spec)),
        instances: s.instances,
        inflight: s.inflight,
        connections: s.connections,
        cold_starts: s.cold_starts,
        renewals: s.renewals,
        start_timeouts: s.start_timeouts,
        failures: s.failures,
        spilled: s.spilled,
        last_error: s.last_error.clone(),
        throttled: s.throttled,
    }
}

fn instance_to_pb(service: &str, i: InstanceView) -> pb::ServiceInstance {
    let state = match i.state {
        pool::State::Starting => pb::InstanceState::Starting,
        pool::State::Ready => pb::InstanceState::Ready,
        pool::State::Draining => pb::InstanceState::Draining,
    };
    pb::ServiceInstance {
        service: service.to_string(),
        id: i.id,
        pid: i.pid,
        state: state as i32,
        started_unix_ms: i.started_unix_ms,
        connections: i.connections,
        inflight: i.inflight,
        port: i.port.into(),
        spare: i.spare,
        steered: i.steered,
    }
}

#[tonic::async_trait]
impl pb::services_server::Services for ServicesApi {
    async fn create(
        &self,
        request: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::CreateServiceReply>, Status> {
        admit(&Caller::of(&request), "create services")?;
        let req = request.into_inner();
        let spec = from_pb(req.spec.unwrap_or_default()).map_err(|e| status(&e))?;
        let services = self.services.clone();
        // In a task of its own: a caller who goes away never leaves a half-made service.
        let made = tokio::spawn(async move { services.create(spec, req.validate_only).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::CreateServiceReply {
            host: self.host.clone(),
            service: Some(summary_to_pb(&made)),
        }))
    }

    async fn list(
        &self,
        _: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesReply>, Status> {
        let services = self.services.list().iter().map(summary_to_pb).collect();
        Ok(Response::new(pb::ListServicesReply { host: self.host.clone(), services }))
    }

    async fn show(
        &self,
        request: Request<pb::ShowServiceRequest>,
    ) -> Result<Response<pb::ShowServiceReply>, Status> {
        let name = request.into_inner().name;
        let (summary, instances) = self.services.show(&name).map_err(|e| status(&e))?;
        Ok(Response::new(pb::ShowServiceReply {
            host: self.host.clone(),
            service: Some(summary_to_pb(&summary)),
            instances: instances.into_iter().map(|i| instance_to_pb(&name, i)).collect(),
        }))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveServiceRequest>,
    ) -> Result<Response<pb::RemoveServiceReply>, Status> {
        admit(&Caller::of(&request), "remove services")?;
        let req = request.into_inner();
        let drain = (req.drain_ms > 0).then(|| Duration::from_millis(req.drain_ms));
        let services = self.services.clone();
        let stopped = tokio::spawn(async move { services.remove(&req.name, drain).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::RemoveServiceReply { host: self.host.clone(), stopped }))
    }
}
