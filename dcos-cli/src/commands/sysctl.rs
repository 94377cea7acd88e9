//! `dcos sysctl get KEY` across the fleet and `dcos sysctl set KEY=VALUE --host H` on one.

use super::{encode, Context, SetupError};
use crate::cli::Format;
use crate::output;
use crate::table;
use dcos_core::model::SysctlValue;
use k2i_client::FetchError;

pub async fn get(ctx: &Context, key: &str) -> Result<u8, SetupError> {
    let path = format!("/v1/sysctl/{}", encode(key));
    let answers = ctx.fanout.get_all::<SysctlValue>(&ctx.targets, |_| path.clone()).await;
    let mut reports = Vec::new();
    let mut items = Vec::new();
    let mut rows = Vec::new();
    for a in answers {
        if let Some(v) = &a.value {
            items.push(output::with_host(&a.report.host, v));
            rows.push(vec![a.report.host.clone(), v.key.clone(), v.value.clone()]);
        }
        reports.push(a.report);
    }
    match ctx.format {
        Format::Json => output::print_document("parameters", &reports, &items),
        Format::Ndjson => items.iter().for_each(output::print_line),
        Format::Table | Format::Wide => print!("{}", table::render(&["HOST", "KEY", "VALUE"], &rows)),
    }
    Ok(output::finish(&reports))
}

pub async fn set(ctx: &Context, assignment: &str, host: &str) -> Result<u8, SetupError> {
    let (key, value) = assignment
        .split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| SetupError::Usage(format!("{assignment:?} is not KEY=VALUE")))?;
    let target = ctx
        .targets
        .iter()
        .find(|t| t.name == host || t.k2i.trim_start_matches("https://") == host || t.k2i == host)
        .ok_or_else(|| {
            let known: Vec<&str> = ctx.targets.iter().map(|t| t.name.as_str()).collect();
            SetupError::Usage(format!("unknown host {host:?}; the fleet has: {}", known.join(", ")))
        })?;
    let body = serde_json::to_vec(&serde_json::json!({ "value": value })).unwrap_or_default();
    let path = format!("/v1/sysctl/{}", encode(key));
    match ctx.fanout.client.request("PUT", &target.k2i, &path, Some(body), ctx.fanout.timeout).await {
        Ok(bytes) => {
            let v: SysctlValue = serde_json::from_slice(&bytes).unwrap_or(SysctlValue {
                key: key.into(),
                value: value.into(),
                old_value: None,
            });
            match ctx.format {
                Format::Json | Format::Ndjson => output::print_line(&output::with_host(&target.name, &v)),
                _ => println!(
                    "{}: {} = {} (was {})",
                    target.name,
                    v.key,
                    v.value,
                    v.old_value.as_deref().unwrap_or("?")
                ),
            }
            Ok(crate::exit::OK)
        }
        Err(e) => {
            let hint = match &e {
                FetchError::Http { status: 403, code, .. } if code == "not_allowed" => {
                    " (add it to that host's --sysctl-allow)"
                }
                FetchError::Http { status: 403, .. } => " (writes need an admin certificate)",
                _ => "",
            };
            eprintln!("dcos: {}: {}: {e}{hint}", target.name, e.status());
            Ok(crate::exit::FAILED)
        }
    }
}
