//! Removing the pods a dead runner left: every pod labelled as Slipway's whose owner annotation
//! names a process of this host that no longer runs. Pods of live runners and of other hosts are
//! theirs to remove.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use super::pod::managed_selector;
use super::status::{api_err, is_not_found};
use crate::executor::{ExecError, LABEL_OWNER, SweepReport, owner_alive};

pub(super) async fn sweep(pods: &Api<Pod>) -> Result<SweepReport, ExecError> {
    let list = pods
        .list(&ListParams::default().labels(&managed_selector()))
        .await
        .map_err(api_err("listing Slipway's pods"))?;
    let mut report = SweepReport::default();
    for pod in list.items {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let owner = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LABEL_OWNER));
        if owner.is_some_and(|o| owner_alive(o)) {
            continue;
        }
        match pods
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => report.containers.push(name),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api_err(format!("deleting pod {name}"))(e)),
        }
    }
    Ok(report)
}
