//! Removing what jobs leave behind by label: a job's teardown and the startup sweep of what
//! dead runners left (their containers, networks and volumes, never a kept cache volume).

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};

use super::{DockerExecutor, engine_err, is_status};
use crate::executor::{ExecError, LABEL_CACHE, LABEL_OWNER, LABEL_ROLE, owner_alive};

/// The kinds of engine objects a job can own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Containers, stopped ones too.
    Container,
    /// Networks.
    Network,
    /// Volumes.
    Volume,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Network => "network",
            Kind::Volume => "volume",
        }
    }
}

/// One engine object a label filter matched.
#[derive(Clone, Debug)]
pub struct Labelled {
    /// The container's id; a network's or volume's name.
    pub id: String,
    /// The name it is shown and reported by.
    pub name: String,
    /// All its labels.
    pub labels: HashMap<String, String>,
}

/// Whether a sweep of dead runners' leftovers must keep this object: its owner still runs.
fn spared(labels: &HashMap<String, String>, only_dead_owners: bool) -> bool {
    only_dead_owners && labels.get(LABEL_OWNER).is_some_and(|o| owner_alive(o))
}

/// Removes the job container first, its services next, the namespace holder last.
fn removal_order(c: &Labelled) -> u8 {
    match c.labels.get(LABEL_ROLE).map(String::as_str) {
        Some("job") => 0,
        Some("service") => 1,
        _ => 2,
    }
}

impl DockerExecutor {
    /// The objects of `kind` that `filters` (the engine's list filters) match.
    pub async fn labelled(
        &self,
        kind: Kind,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<Labelled>, ExecError> {
        let listing = engine_err(format!("listing {}s", kind.noun()));
        Ok(match kind {
            Kind::Container => {
                let options = ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(filters)
                    .build();
                let list = self.docker.list_containers(Some(options)).await;
                let found = list.map_err(listing)?.into_iter().filter_map(|c| {
                    let id = c.id?;
                    let name = c.names.as_ref().and_then(|n| n.first());
                    Some(Labelled {
                        name: name.map_or_else(|| id.clone(), |n| n.trim_start_matches('/').into()),
                        id,
                        labels: c.labels.unwrap_or_default(),
                    })
                });
                found.collect()
            }
            Kind::Network => {
                let options = ListNetworksOptionsBuilder::default()
                    .filters(filters)
                    .build();
                let list = self.docker.list_networks(Some(options)).await;
                let found = list.map_err(listing)?.into_iter().filter_map(|n| {
                    let name = n.name?;
                    let labels = n.labels.unwrap_or_default();
                    Some(Labelled {
                        id: name.clone(),
                        name,
                        labels,
                    })
                });
                found.collect()
            }
            Kind::Volume => {
                let options = ListVolumesOptionsBuilder::default()
                    .filters(filters)
                    .build();
                let list = self.docker.list_volumes(Some(options)).await;
                let volumes = list.map_err(listing)?.volumes.unwrap_or_default();
                let found = volumes.into_iter().map(|v| Labelled {
                    id: v.name.clone(),
                    name: v.name,
                    labels: v.labels,
                });
                found.collect()
            }
        })
    }

    /// Removes the objects of `kind` that `filters` match, except kept cache volumes and, with
    /// `only_dead_owners`, what a live runner owns; returns the names removed. Objects already
    /// gone, or still in use by a live container, are not errors: they simply are not counted.
    pub(super) async fn remove_labelled(
        &self,
        kind: Kind,
        filters: &HashMap<String, Vec<String>>,
        only_dead_owners: bool,
    ) -> Result<Vec<String>, ExecError> {
        let mut list = self.labelled(kind, filters).await?;
        let kept_cache = |o: &Labelled| kind == Kind::Volume && o.labels.contains_key(LABEL_CACHE);
        list.retain(|o| !kept_cache(o) && !spared(&o.labels, only_dead_owners));
        if kind == Kind::Container {
            list.sort_by_key(removal_order);
        }
        let mut removed = Vec::new();
        for o in list {
            let (outcome, tolerated): (_, &[u16]) = match kind {
                Kind::Container => {
                    let options = RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build();
                    let outcome = self.docker.remove_container(&o.id, Some(options)).await;
                    (outcome, &[404, 409])
                }
                Kind::Network => (self.remove_network_once_free(&o.id).await, &[404]),
                Kind::Volume => {
                    let options = RemoveVolumeOptionsBuilder::default().force(true).build();
                    (
                        self.docker.remove_volume(&o.id, Some(options)).await,
                        &[404, 409],
                    )
                }
            };
            match outcome {
                Ok(()) => removed.push(o.name),
                Err(e) if is_status(&e, tolerated) => {}
                Err(e) => {
                    return Err(engine_err(format!("removing {} {}", kind.noun(), o.name))(
                        e,
                    ));
                }
            }
        }
        Ok(removed)
    }

    /// Removes a network, waiting a little while the engine still lists an endpoint of a
    /// container it has just removed (it answers 403 or 409, "has active endpoints", for a
    /// moment after a forced removal on a busy machine).
    async fn remove_network_once_free(&self, name: &str) -> Result<(), BollardError> {
        const TRIES: u32 = 40;
        let mut tries = 0;
        loop {
            match self.docker.remove_network(name).await {
                Err(e) if tries < TRIES && is_status(&e, &[403, 409]) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                outcome => return outcome,
            }
        }
    }
}
