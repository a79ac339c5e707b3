//! `provider: ecs`: register a new task-definition revision with this build's images (from a
//! family to revise or a `Dockerrun.aws.json` v2 to convert), update the service, wait until it is
//! stable, and optionally roll back to the previous revision when it is not.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{
    ContainerDefinition, HostVolumeProperties, KeyValuePair, MountPoint, PortMapping,
    TransportProtocol, Volume, VolumeFrom,
};
use indexmap::IndexMap;
use serde_json::Value;

use crate::aws::{AwsAuth, AwsDeployer, api_error};
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::dockerrun::{self, DockerrunError};
use crate::error::{Error, option_error};
use crate::images::pushed_for;
use crate::options::Options;
use slipway_runner::DeployLog;

const NAME: &str = "ecs";

/// Every option the ecs provider takes.
pub const OPTIONS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "region",
    "endpoint",
    "cluster",
    "service",
    "task_definition",
    "dockerrun",
    "family",
    "container",
    "image",
    "images",
    "pin_images",
    "wait_until_deployed",
    "timeout",
    "rollback",
];

/// Where the new revision's container definitions come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The latest revision of this family, images replaced.
    Family(String),
    /// A `Dockerrun.aws.json` v2 (path relative to the working tree), registered as `family`.
    Dockerrun {
        /// The file.
        path: String,
        /// The family to register under.
        family: String,
    },
}

/// Typed ECS options.
#[derive(Debug)]
pub struct Ecs {
    auth: AwsAuth,
    cluster: String,
    service: String,
    source: Source,
    images: IndexMap<String, String>,
    pin_images: bool,
    wait: bool,
    timeout: u64,
    rollback: bool,
}

impl Ecs {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let auth = AwsAuth::read(&mut o)?;
        let cluster = o.required(&["cluster"])?;
        let service = o.required(&["service"])?;
        let task_definition = o.string(&["task_definition"])?;
        let dockerrun = o.string(&["dockerrun"])?;
        let family = o.string(&["family"])?;
        let source = match (task_definition, dockerrun) {
            (Some(_), Some(_)) => {
                return Err(option_error(
                    NAME,
                    "dockerrun",
                    "give either task_definition (a family to revise) or dockerrun, not both",
                ));
            }
            (Some(family), None) => Source::Family(family),
            (None, path) => Source::Dockerrun {
                path: path.unwrap_or_else(|| dockerrun::FILE_NAME.to_owned()),
                family: family.unwrap_or_else(|| service.clone()),
            },
        };
        let mut images = IndexMap::new();
        if let Some((name, map)) = o.map(&["images"])? {
            for (container, v) in &map {
                let image = o.text_value(&format!("{name}.{container}"), v)?;
                images.insert(container.clone(), image.expose().to_owned());
            }
        }
        match (o.string(&["container"])?, o.string(&["image"])?) {
            (Some(c), Some(i)) => {
                images.insert(c, i);
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(option_error(NAME, "image", "is required with container"));
            }
            (None, Some(_)) => {
                return Err(option_error(NAME, "container", "is required with image"));
            }
        }
        let pin_images = o.bool(&["pin_images"])?.unwrap_or(true);
        let wait = o.bool(&["wait_until_deployed"])?.unwrap_or(true);
        let timeout = o.u64(&["timeout"])?.unwrap_or(600);
        let rollback = o.bool(&["rollback"])?.unwrap_or(false);
        o.finish(OPTIONS)?;
        Ok(Ecs {
            auth,
            cluster,
            service,
            source,
            images,
            pin_images,
            wait,
            timeout,
            rollback,
        })
    }

    /// The image a container should run: named in `images`, else this build's push of its repository.
    fn image_for(&self, container: &str, current: &str, ctx: &DeployContext) -> Option<String> {
        if let Some(i) = self.images.get(container) {
            return Some(i.clone());
        }
        if self.pin_images {
            return pushed_for(current, &ctx.pushed_images).map(str::to_owned);
        }
        None
    }

    fn read_dockerrun(&self, ctx: &DeployContext, path: &str) -> Result<Value, Error> {
        let full = ctx.input(NAME, "dockerrun", path)?;
        let bytes = std::fs::read(&full).map_err(|e| Error::File {
            provider: NAME,
            path: full.clone(),
            message: e.to_string(),
        })?;
        dockerrun::parse_v2(&bytes).map_err(|e| Error::File {
            provider: NAME,
            path: full,
            message: e.to_string(),
        })
    }

    /// The new revision's registration: the family's current definition or the Dockerrun
    /// file, with this build's images; and the image changes, for the log.
    async fn registration(
        &self,
        ctx: &DeployContext,
        client: &aws_sdk_ecs::Client,
        dockerrun: Option<Value>,
    ) -> Result<(RegisterTaskDefinitionFluentBuilder, Vec<String>), Error> {
        let mut register = client.register_task_definition();
        let mut changes = Vec::new();
        match &self.source {
            Source::Family(family) => {
                let out = client
                    .describe_task_definition()
                    .task_definition(family)
                    .send()
                    .await
                    .map_err(|e| {
                        api_error(NAME, &format!("DescribeTaskDefinition {family}"), &e)
                    })?;
                let td = out.task_definition().ok_or_else(|| Error::Failed {
                    provider: NAME,
                    message: format!("task definition {family} not found"),
                })?;
                let mut defs = td.container_definitions().to_vec();
                for d in &mut defs {
                    let name = d.name().unwrap_or_default().to_owned();
                    let current = d.image().unwrap_or_default().to_owned();
                    if let Some(image) = self.image_for(&name, &current, ctx)
                        && image != current
                    {
                        changes.push(format!("{name}: {current} → {image}"));
                        *d = d.clone().to_builder_with_image(image);
                    }
                }
                register = register
                    .family(td.family().unwrap_or(family))
                    .set_container_definitions(Some(defs))
                    .set_volumes(Some(td.volumes().to_vec()))
                    .set_task_role_arn(td.task_role_arn().map(str::to_owned))
                    .set_execution_role_arn(td.execution_role_arn().map(str::to_owned))
                    .set_network_mode(td.network_mode().cloned())
                    .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
                    .set_cpu(td.cpu().map(str::to_owned))
                    .set_memory(td.memory().map(str::to_owned))
                    .set_placement_constraints(Some(td.placement_constraints().to_vec()));
            }
            Source::Dockerrun { path, family } => {
                let doc = dockerrun.unwrap_or_default();
                let mut defs = Vec::new();
                for c in doc["containerDefinitions"].as_array().into_iter().flatten() {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
                    let current = c.get("image").and_then(Value::as_str).unwrap_or("");
                    let image = self.image_for(name, current, ctx);
                    if let Some(i) = &image
                        && i != current
                    {
                        changes.push(format!("{name}: {current} → {i}"));
                    }
                    defs.push(container_from_dockerrun(c, image).map_err(|e| Error::File {
                        provider: NAME,
                        path: ctx.workdir.join(path),
                        message: e.to_string(),
                    })?);
                }
                register = register
                    .family(family)
                    .set_container_definitions(Some(defs))
                    .set_volumes(Some(volumes_from_dockerrun(&doc)));
            }
        }
        Ok((register, changes))
    }

    async fn client(&self, ctx: &DeployContext) -> Result<aws_sdk_ecs::Client, Error> {
        let conf = self.auth.sdk_config(NAME, ctx).await?;
        let mut b = aws_sdk_ecs::config::Builder::from(&conf);
        if let Some(ep) = self.auth.endpoint_or(ctx.endpoints.ecs.as_ref()) {
            b = b.endpoint_url(ep);
        }
        Ok(aws_sdk_ecs::Client::from_conf(b.build()))
    }

    /// The service as ECS describes it now; a missing service is an error naming ECS's reason.
    async fn describe_service(
        &self,
        client: &aws_sdk_ecs::Client,
    ) -> Result<aws_sdk_ecs::types::Service, Error> {
        let out = client
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .map_err(|e| api_error(NAME, "DescribeServices", &e))?;
        if let Some(svc) = out.services().first() {
            return Ok(svc.clone());
        }
        let reason = out
            .failures()
            .first()
            .and_then(|f| f.reason())
            .unwrap_or("not found");
        Err(Error::Failed {
            provider: NAME,
            message: format!(
                "service {} in cluster {}: {reason}",
                self.service, self.cluster
            ),
        })
    }

    async fn wait_stable(
        &self,
        ctx: &DeployContext,
        client: &aws_sdk_ecs::Client,
        arn: &str,
        log: &dyn DeployLog,
    ) -> Result<String, Error> {
        let deadline = Instant::now() + Duration::from_secs(self.timeout);
        let mut last = String::new();
        loop {
            let svc = self.describe_service(client).await?;
            let primary = svc
                .deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY"));
            let rollout = primary
                .and_then(|d| d.rollout_state())
                .map(|r| r.as_str().to_owned())
                .unwrap_or_else(|| "UNKNOWN".into());
            let reason = primary
                .and_then(|d| d.rollout_state_reason())
                .unwrap_or("")
                .to_owned();
            let state = format!(
                "rollout {rollout}, {} of {} task(s) running, {} deployment(s)",
                svc.running_count(),
                svc.desired_count(),
                svc.deployments().len()
            );
            if state != last {
                log.line(&format!("ecs: service {}: {state}", self.service));
                last = state.clone();
            }
            if rollout == "FAILED" {
                return Err(Error::Failed {
                    provider: NAME,
                    message: crate::error::one_line(&format!(
                        "service {} rollout FAILED: {reason}",
                        self.service
                    )),
                });
            }
            let stable = svc.task_definition() == Some(arn)
                && svc.deployments().len() == 1
                && svc.running_count() == svc.desired_count();
            if stable {
                return Ok(rollout);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    provider: NAME,
                    what: format!("service {} becoming stable", self.service),
                    seconds: self.timeout,
                    detail: Some(state),
                });
            }
            tokio::time::sleep(ctx.poll_interval).await;
        }
    }
}

/// The container fields [`container_from_dockerrun`] converts; any other is refused.
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "essential",
    "memory",
    "memoryReservation",
    "cpu",
    "hostname",
    "workingDirectory",
    "user",
    "privileged",
    "links",
    "command",
    "entryPoint",
    "portMappings",
    "environment",
    "mountPoints",
    "volumesFrom",
    "dockerLabels",
];

/// The string at `key` of `v`.
fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The number at `key` of `v`, as the SDK's `i32`.
fn int_at(v: &Value, key: &str) -> Option<i32> {
    v.get(key).and_then(Value::as_i64).map(|n| n as i32)
}

/// The items of the list at `key` of `v` (none when it is missing or not a list).
fn items<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> + use<'v> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The items as a list, or nothing when there are none (the field is then left out of the
/// request, as the Dockerrun file left it out).
fn listed<T>(items: impl Iterator<Item = T>) -> Option<Vec<T>> {
    Some(items.collect::<Vec<T>>()).filter(|v| !v.is_empty())
}

/// Converts one Dockerrun v2 container to an ECS container definition, refusing unknown fields.
fn container_from_dockerrun(
    c: &Value,
    image: Option<String>,
) -> Result<ContainerDefinition, DockerrunError> {
    let obj = c.as_object().ok_or(DockerrunError::NotAMapping)?;
    let name = str_at(c, "name").unwrap_or_else(|| "?".to_owned());
    if let Some(unknown) = obj.keys().find(|k| !CONTAINER_FIELDS.contains(&k.as_str())) {
        return Err(DockerrunError::Unsupported {
            container: name,
            field: unknown.clone(),
            service: "ECS",
        });
    }
    let strs = |k: &str| items(c, k).filter_map(|v| v.as_str().map(str::to_owned));
    let mut b = ContainerDefinition::builder()
        .name(&name)
        .set_image(image.or_else(|| str_at(c, "image")))
        .set_essential(c.get("essential").and_then(Value::as_bool))
        .set_memory(int_at(c, "memory"))
        .set_memory_reservation(int_at(c, "memoryReservation"))
        .set_cpu(int_at(c, "cpu"))
        .set_hostname(str_at(c, "hostname"))
        .set_working_directory(str_at(c, "workingDirectory"))
        .set_user(str_at(c, "user"))
        .set_privileged(c.get("privileged").and_then(Value::as_bool))
        .set_links(listed(strs("links")))
        .set_command(listed(strs("command")))
        .set_entry_point(listed(strs("entryPoint")))
        .set_port_mappings(listed(items(c, "portMappings").map(port_mapping)))
        .set_environment(listed(items(c, "environment").map(key_value)))
        .set_mount_points(listed(items(c, "mountPoints").map(mount_point)))
        .set_volumes_from(listed(items(c, "volumesFrom").map(volume_from)));
    if let Some(labels) = c.get("dockerLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            b = b.docker_labels(k, v.as_str().unwrap_or_default());
        }
    }
    Ok(b.build())
}

fn port_mapping(p: &Value) -> PortMapping {
    PortMapping::builder()
        .set_host_port(int_at(p, "hostPort"))
        .set_container_port(int_at(p, "containerPort"))
        .set_protocol(
            p.get("protocol")
                .and_then(Value::as_str)
                .map(TransportProtocol::from),
        )
        .build()
}

/// An `environment` entry; a value that is not a string is given as its JSON text.
fn key_value(e: &Value) -> KeyValuePair {
    KeyValuePair::builder()
        .set_name(str_at(e, "name"))
        .set_value(e.get("value").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }))
        .build()
}

fn mount_point(m: &Value) -> MountPoint {
    MountPoint::builder()
        .set_source_volume(str_at(m, "sourceVolume"))
        .set_container_path(str_at(m, "containerPath"))
        .set_read_only(m.get("readOnly").and_then(Value::as_bool))
        .build()
}

fn volume_from(v: &Value) -> VolumeFrom {
    VolumeFrom::builder()
        .set_source_container(str_at(v, "sourceContainer"))
        .set_read_only(v.get("readOnly").and_then(Value::as_bool))
        .build()
}

fn volumes_from_dockerrun(doc: &Value) -> Vec<Volume> {
    doc.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| {
            Volume::builder()
                .set_name(v.get("name").and_then(Value::as_str).map(str::to_owned))
                .set_host(
                    v.pointer("/host/sourcePath")
                        .and_then(Value::as_str)
                        .map(|p| HostVolumeProperties::builder().source_path(p).build()),
                )
                .build()
        })
        .collect()
}

#[async_trait]
impl AwsDeployer for Ecs {
    fn auth(&self) -> &AwsAuth {
        &self.auth
    }

    fn service_calls(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let mut calls = vec![
            ApiCall::new(NAME, "DescribeServices")
                .param("cluster", &self.cluster)
                .param("services", &self.service)
                .note("the current revision, for rollback"),
        ];
        let mut register = ApiCall::new(NAME, "RegisterTaskDefinition");
        match &self.source {
            Source::Family(family) => {
                calls.push(
                    ApiCall::new(NAME, "DescribeTaskDefinition").param("taskDefinition", family),
                );
                register = register.param("family", family);
                for (c, i) in &self.images {
                    register = register.param(&format!("containerDefinitions[{c}].image"), i);
                }
                if self.pin_images && !ctx.pushed_images.is_empty() {
                    register = register.note(
                        "other containers pinned to this build's pushed images by repository",
                    );
                }
            }
            Source::Dockerrun { path, family } => {
                register = register.param("family", family).param("from", path);
                match self.read_dockerrun(ctx, path) {
                    Ok(doc) => {
                        for c in doc["containerDefinitions"].as_array().into_iter().flatten() {
                            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
                            let current = c.get("image").and_then(Value::as_str).unwrap_or("");
                            let image = self
                                .image_for(name, current, ctx)
                                .unwrap_or_else(|| current.to_owned());
                            register = register
                                .param(&format!("containerDefinitions[{name}].image"), image);
                        }
                    }
                    Err(e) => register = register.note(e.one_line()),
                }
            }
        }
        calls.push(register);
        calls.push(
            ApiCall::new(NAME, "UpdateService")
                .param("cluster", &self.cluster)
                .param("service", &self.service)
                .param("taskDefinition", "<the new revision>"),
        );
        if self.wait {
            calls.push(
                ApiCall::new(NAME, "DescribeServices")
                    .param("cluster", &self.cluster)
                    .param("services", &self.service)
                    .note(format!(
                        "until one deployment runs the desired count, at most {} s",
                        self.timeout
                    )),
            );
            if self.rollback {
                calls.push(
                    ApiCall::new(NAME, "UpdateService")
                        .param("service", &self.service)
                        .param("taskDefinition", "<the previous revision>")
                        .note("only if the service does not become stable"),
                );
            }
        }
        calls
    }

    async fn run(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        // The Dockerrun file first: one outside the build dir fails the deploy before any call.
        let dockerrun = match &self.source {
            Source::Dockerrun { path, .. } => Some(self.read_dockerrun(ctx, path)?),
            Source::Family(_) => None,
        };
        let client = self.client(ctx).await?;
        let svc = self.describe_service(&client).await?;
        let previous = svc.task_definition().map(str::to_owned);

        let (register, changes) = self.registration(ctx, &client, dockerrun).await?;
        for c in &changes {
            log.line(&format!("ecs: image {c}"));
        }
        let out = register
            .send()
            .await
            .map_err(|e| api_error(NAME, "RegisterTaskDefinition", &e))?;
        let arn = out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .unwrap_or_default()
            .to_owned();
        log.line(&format!("ecs: registered {arn}"));
        client
            .update_service()
            .cluster(&self.cluster)
            .service(&self.service)
            .task_definition(&arn)
            .send()
            .await
            .map_err(|e| api_error(NAME, "UpdateService", &e))?;
        log.line(&format!("ecs: service {} now uses {arn}", self.service));
        if !self.wait {
            return Ok(format!("service {} updated to {arn}", self.service));
        }
        match self.wait_stable(ctx, &client, &arn, log).await {
            Ok(rollout) => Ok(format!(
                "service {} is stable on {arn} (rollout {rollout})",
                self.service
            )),
            Err(e) => {
                if self.rollback
                    && let Some(prev) = previous
                {
                    log.line(&format!(
                        "ecs: rolling service {} back to {prev}",
                        self.service
                    ));
                    client
                        .update_service()
                        .cluster(&self.cluster)
                        .service(&self.service)
                        .task_definition(&prev)
                        .send()
                        .await
                        .map_err(|e| api_error(NAME, "UpdateService (rollback)", &e))?;
                    return Err(Error::Failed {
                        provider: NAME,
                        message: format!(
                            "{} (rolled back to {prev})",
                            e.one_line().trim_start_matches("ecs: ")
                        ),
                    });
                }
                Err(e)
            }
        }
    }
}

/// Replaces a container definition's image, keeping everything else.
trait WithImage {
    fn to_builder_with_image(self, image: String) -> ContainerDefinition;
}

impl WithImage for ContainerDefinition {
    fn to_builder_with_image(mut self, image: String) -> ContainerDefinition {
        self.image = Some(image);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerrun_fields_map_to_ecs_and_unknown_ones_are_refused() {
        let c: Value = serde_json::from_str(
            r#"{"name": "nginx", "image": "me/nginx", "essential": true, "memory": 128,
                "portMappings": [{"hostPort": 80, "containerPort": 80}], "links": ["web"]}"#,
        )
        .unwrap();
        let d = container_from_dockerrun(&c, Some("me/nginx:abc".into())).unwrap();
        assert_eq!(d.image(), Some("me/nginx:abc"));
        assert_eq!(d.memory(), Some(128));
        assert_eq!(d.links(), ["web"]);
        assert_eq!(d.port_mappings()[0].host_port(), Some(80));

        let bad: Value = serde_json::from_str(r#"{"name": "x", "image": "y", "gpu": 1}"#).unwrap();
        assert_eq!(
            container_from_dockerrun(&bad, None)
                .unwrap_err()
                .to_string(),
            "container x: field `gpu` is not supported for ECS"
        );
    }
}
