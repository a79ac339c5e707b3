//! `provider: elasticbeanstalk`: dpl-compatible Beanstalk deploys — bundle the working tree,
//! upload it to S3, create an application version, update the environment and wait until Ready.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_elasticbeanstalk::primitives::DateTime;
use aws_sdk_elasticbeanstalk::types::{EventSeverity, S3Location};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use crate::aws::{AwsAuth, AwsDeployer, api_error};
use crate::bundle;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::dockerrun;
use crate::error::Error;
use crate::images::Pinned;
use crate::options::Options;
use slipway_runner::DeployLog;

const NAME: &str = "elasticbeanstalk";

/// The bundle's files, replaced contents, and the images pinned in them.
type BundlePlan = (Vec<String>, BTreeMap<String, Vec<u8>>, Vec<Pinned>);
const SERVICE: &str = "elasticbeanstalk";

/// Every option the elasticbeanstalk provider takes (`bucket_name` is dpl's alias of `bucket`).
pub const OPTIONS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "region",
    "endpoint",
    "app",
    "env",
    "bucket",
    "bucket_name",
    "bucket_path",
    "zip_file",
    "label",
    "description",
    "only_create_app_version",
    "wait_until_deployed",
    "wait_until_deployed_timeout",
    "solution_stack",
    "pin_images",
    "debug",
];

/// Typed Beanstalk options.
#[derive(Debug)]
pub struct ElasticBeanstalk {
    auth: AwsAuth,
    app: String,
    env: Option<String>,
    bucket: String,
    bucket_path: Option<String>,
    zip_file: Option<String>,
    label: String,
    description: String,
    only_create_app_version: bool,
    wait: bool,
    timeout: u64,
    solution_stack: Option<String>,
    pin_images: bool,
}

impl ElasticBeanstalk {
    pub(crate) fn parse(mut o: Options<'_>) -> Result<Self, Error> {
        let ctx = o.ctx();
        let auth = AwsAuth::read(&mut o)?;
        let app = o
            .string(&["app"])?
            .unwrap_or_else(|| ctx.repo_name().to_owned());
        let env = o.string(&["env"])?;
        let bucket = o.required(&["bucket"])?;
        let bucket_path = o
            .string(&["bucket_path"])?
            .map(|p| p.trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty());
        let zip_file = o.string(&["zip_file"])?;
        let label = o
            .string(&["label"])?
            .unwrap_or_else(|| format!("slipway-{}-{}", ctx.commit, ctx.now));
        let description = o
            .string(&["description"])?
            .unwrap_or_else(|| ctx.commit_message.clone());
        let description: String = description.chars().take(200).collect();
        let only_create_app_version = o.bool(&["only_create_app_version"])?.unwrap_or(false);
        let wait = o.bool(&["wait_until_deployed"])?.unwrap_or(true);
        let timeout = o.u64(&["wait_until_deployed_timeout"])?.unwrap_or(600);
        let solution_stack = o.string(&["solution_stack"])?;
        let pin_images = o.bool(&["pin_images"])?.unwrap_or(true);
        o.bool(&["debug"])?;
        o.finish(OPTIONS)?;
        if env.is_none() && !only_create_app_version {
            return Err(crate::error::option_error(
                NAME,
                "env",
                "is required unless only_create_app_version is true",
            ));
        }
        Ok(ElasticBeanstalk {
            auth,
            app,
            env,
            bucket,
            bucket_path,
            zip_file,
            label,
            description,
            only_create_app_version,
            wait,
            timeout,
            solution_stack,
            pin_images,
        })
    }

    /// The object key of the bundle: `bucket_path/label.zip` (dpl's layout).
    pub fn key(&self) -> String {
        let file = match &self.zip_file {
            Some(z) => std::path::Path::new(z)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("{}.zip", self.label)),
            None => format!("{}.zip", self.label),
        };
        match &self.bucket_path {
            Some(p) => format!("{p}/{file}"),
            None => file,
        }
    }

    /// The working tree's files and the pinned `Dockerrun.aws.json`, when there is one to pin.
    fn bundle_plan(&self, ctx: &DeployContext) -> Result<BundlePlan, Error> {
        let file_error = |message: String| Error::File {
            provider: NAME,
            path: ctx.workdir.clone(),
            message,
        };
        let root = ctx.build_dir(NAME)?.root().to_path_buf();
        let files = bundle::files(&root).map_err(|e| file_error(e.to_string()))?;
        let mut replace = BTreeMap::new();
        let mut pinned = Vec::new();
        let dockerrun_path = ctx.input(NAME, dockerrun::FILE_NAME, dockerrun::FILE_NAME)?;
        if self.pin_images && !ctx.pushed_images.is_empty() && dockerrun_path.is_file() {
            let bytes = std::fs::read(&dockerrun_path).map_err(|e| file_error(e.to_string()))?;
            if let Ok(mut doc) = dockerrun::parse_v2(&bytes) {
                pinned = dockerrun::pin_images(&mut doc, &ctx.pushed_images);
                if !pinned.is_empty() {
                    let mut text = serde_json::to_vec_pretty(&doc).unwrap_or(bytes);
                    text.push(b'\n');
                    replace.insert(dockerrun::FILE_NAME.to_owned(), text);
                }
            }
        }
        Ok((files, replace, pinned))
    }

    fn ignore_rules(ctx: &DeployContext) -> &'static str {
        if ctx.workdir.join(".ebignore").is_file() {
            ".ebignore"
        } else {
            ".gitignore"
        }
    }

    async fn clients(
        &self,
        ctx: &DeployContext,
    ) -> Result<(aws_sdk_s3::Client, aws_sdk_elasticbeanstalk::Client), Error> {
        let conf = self.auth.sdk_config(NAME, ctx).await?;
        let s3 = crate::s3::client(NAME, &self.auth, ctx, false).await?;
        let mut b = aws_sdk_elasticbeanstalk::config::Builder::from(&conf);
        if let Some(ep) = self
            .auth
            .endpoint_or(ctx.endpoints.elasticbeanstalk.as_ref())
        {
            b = b.endpoint_url(ep);
        }
        Ok((s3, aws_sdk_elasticbeanstalk::Client::from_conf(b.build())))
    }

    async fn ensure_bucket(
        &self,
        s3: &aws_sdk_s3::Client,
        log: &dyn DeployLog,
    ) -> Result<(), Error> {
        match s3.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                match status {
                    Some(404) => {}
                    Some(403) => {
                        return Err(Error::Api {
                            provider: NAME,
                            action: format!("HeadBucket {}", self.bucket),
                            message:
                                "AccessDenied (HTTP 403): the credentials may not use this bucket"
                                    .into(),
                        });
                    }
                    _ => return Err(api_error(NAME, &format!("HeadBucket {}", self.bucket), &e)),
                }
            }
        }
        log.line(&format!(
            "elasticbeanstalk: creating bucket {}",
            self.bucket
        ));
        let mut create = s3.create_bucket().bucket(&self.bucket);
        if self.auth.region != crate::aws::DEFAULT_REGION {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.auth.region.as_str()))
                    .build(),
            );
        }
        create
            .send()
            .await
            .map_err(|e| api_error(NAME, &format!("CreateBucket {}", self.bucket), &e))?;
        Ok(())
    }

    /// The bundle to upload: `zip_file` (inside the build dir), else a zip of the working tree
    /// written to a temporary file (kept alive by the second element).
    fn bundle(
        &self,
        ctx: &DeployContext,
        log: &dyn DeployLog,
    ) -> Result<(PathBuf, Option<tempfile::NamedTempFile>), Error> {
        if let Some(z) = &self.zip_file {
            return Ok((ctx.input(NAME, "zip_file", z)?, None));
        }
        let (files, replace, pinned) = self.bundle_plan(ctx)?;
        for p in &pinned {
            log.line(&format!(
                "elasticbeanstalk: {}: image {} pinned to {}",
                p.container, p.from, p.to
            ));
        }
        let tmp = tempfile::Builder::new()
            .prefix("slipway-eb-")
            .suffix(".zip")
            .tempfile()
            .map_err(|e| Error::File {
                provider: NAME,
                path: std::env::temp_dir(),
                message: e.to_string(),
            })?;
        let root = ctx.build_dir(NAME)?.root().to_path_buf();
        let size =
            bundle::write_zip(&root, &files, &replace, tmp.path()).map_err(|e| Error::File {
                provider: NAME,
                path: ctx.workdir.clone(),
                message: e.to_string(),
            })?;
        log.line(&format!(
            "elasticbeanstalk: zipped {} file(s) ({size} bytes, {} rules)",
            files.len(),
            Self::ignore_rules(ctx)
        ));
        Ok((tmp.path().to_path_buf(), Some(tmp)))
    }

    async fn upload(
        &self,
        path: &Path,
        s3: &aws_sdk_s3::Client,
        log: &dyn DeployLog,
    ) -> Result<(), Error> {
        let key = self.key();
        let body = ByteStream::from_path(path).await.map_err(|e| Error::File {
            provider: NAME,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        s3.put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(body)
            .send()
            .await
            .map_err(|e| api_error(NAME, &format!("PutObject s3://{}/{key}", self.bucket), &e))?;
        log.line(&format!(
            "elasticbeanstalk: uploaded s3://{}/{key}",
            self.bucket
        ));
        Ok(())
    }

    async fn wait_until_ready(
        &self,
        ctx: &DeployContext,
        eb: &aws_sdk_elasticbeanstalk::Client,
        env: &str,
        require_label: bool,
        started: DateTime,
        log: &dyn DeployLog,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(self.timeout);
        let mut seen = std::collections::HashSet::new();
        let mut last_status = String::from("unknown");
        loop {
            let events = eb
                .describe_events()
                .application_name(&self.app)
                .environment_name(env)
                .start_time(started)
                .send()
                .await
                .map_err(|e| api_error(NAME, "DescribeEvents", &e))?;
            let mut list: Vec<_> = events.events().to_vec();
            list.sort_by_key(|e| e.event_date().map(|d| (d.secs(), d.subsec_nanos())));
            for ev in list {
                let message = ev.message().unwrap_or("").to_owned();
                let key = (ev.event_date().map(|d| d.secs()), message.clone());
                if !seen.insert(key) {
                    continue;
                }
                let severity = ev
                    .severity()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                log.line(&format!("elasticbeanstalk: {severity} {message}"));
                if ev.severity() == Some(&EventSeverity::Error) {
                    return Err(Error::Failed {
                        provider: NAME,
                        message: crate::error::one_line(&format!(
                            "environment {env} reported an ERROR event: {message}"
                        )),
                    });
                }
            }
            let envs = eb
                .describe_environments()
                .application_name(&self.app)
                .environment_names(env)
                .send()
                .await
                .map_err(|e| api_error(NAME, "DescribeEnvironments", &e))?;
            if let Some(e) = envs
                .environments()
                .iter()
                .find(|e| e.environment_name() == Some(env))
            {
                let status = e
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                let label_ok = !require_label || e.version_label() == Some(self.label.as_str());
                if status != last_status {
                    log.line(&format!(
                        "elasticbeanstalk: environment {env} is {status} (health {})",
                        e.health().map(|h| h.as_str()).unwrap_or("unknown")
                    ));
                    last_status = status.clone();
                }
                if status == "Ready" && label_ok {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    provider: NAME,
                    what: format!(
                        "environment {env} becoming Ready with version {}",
                        self.label
                    ),
                    seconds: self.timeout,
                    detail: Some(format!("last status {last_status}")),
                });
            }
            tokio::time::sleep(ctx.poll_interval).await;
        }
    }
}

#[async_trait]
impl AwsDeployer for ElasticBeanstalk {
    fn auth(&self) -> &AwsAuth {
        &self.auth
    }

    fn service_calls(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let mut calls = vec![ApiCall::new("s3", "HeadBucket").param("Bucket", &self.bucket)];
        let mut create = ApiCall::new("s3", "CreateBucket").param("Bucket", &self.bucket);
        if self.auth.region != crate::aws::DEFAULT_REGION {
            create = create.param(
                "CreateBucketConfiguration.LocationConstraint",
                &self.auth.region,
            );
        }
        calls.push(create.note("only if the bucket is missing"));
        match &self.zip_file {
            Some(z) => calls.push(ApiCall::new("local", "UseZip").param("file", z)),
            None => {
                let mut zip =
                    ApiCall::new("local", "ZipWorkingTree").param("rules", Self::ignore_rules(ctx));
                match self.bundle_plan(ctx) {
                    Ok((files, _, pinned)) => {
                        zip = zip.param("files", files.len().to_string());
                        for p in pinned {
                            zip = zip.param(&format!("pin.{}", p.container), p.to);
                        }
                    }
                    Err(_) => zip = zip.note("the working tree is not available to the dry run"),
                }
                calls.push(zip);
            }
        }
        calls.push(
            ApiCall::new("s3", "PutObject")
                .param("Bucket", &self.bucket)
                .param("Key", self.key()),
        );
        calls.push(
            ApiCall::new(SERVICE, "DescribeApplications")
                .param("ApplicationNames.member.1", &self.app),
        );
        calls.push(
            ApiCall::new(SERVICE, "CreateApplication")
                .param("ApplicationName", &self.app)
                .note("only if the application is missing"),
        );
        calls.push(
            ApiCall::new(SERVICE, "CreateApplicationVersion")
                .param("ApplicationName", &self.app)
                .param("VersionLabel", &self.label)
                .param("Description", &self.description)
                .param("SourceBundle.S3Bucket", &self.bucket)
                .param("SourceBundle.S3Key", self.key()),
        );
        if self.only_create_app_version {
            return calls;
        }
        let Some(env) = &self.env else { return calls };
        calls.push(
            ApiCall::new(SERVICE, "DescribeEnvironments")
                .param("ApplicationName", &self.app)
                .param("EnvironmentNames.member.1", env),
        );
        calls.push(
            ApiCall::new(SERVICE, "UpdateEnvironment")
                .param("ApplicationName", &self.app)
                .param("EnvironmentName", env)
                .param("VersionLabel", &self.label),
        );
        if let Some(stack) = &self.solution_stack {
            calls.push(
                ApiCall::new(SERVICE, "CreateEnvironment")
                    .param("ApplicationName", &self.app)
                    .param("EnvironmentName", env)
                    .param("VersionLabel", &self.label)
                    .param("SolutionStackName", stack)
                    .note("instead of UpdateEnvironment when the environment is missing"),
            );
        }
        if self.wait {
            calls.push(
                ApiCall::new(SERVICE, "DescribeEvents")
                    .param("ApplicationName", &self.app)
                    .param("EnvironmentName", env)
                    .note("polled with DescribeEnvironments; an ERROR event fails the deploy"),
            );
            calls.push(
                ApiCall::new(SERVICE, "DescribeEnvironments")
                    .param("EnvironmentNames.member.1", env)
                    .note(format!("until Status is Ready, at most {} s", self.timeout)),
            );
        }
        calls
    }

    async fn run(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        // The bundle first: a file outside the build dir fails the deploy before any call.
        let bundle = self.bundle(ctx, log)?;
        let (s3, eb) = self.clients(ctx).await?;
        self.ensure_bucket(&s3, log).await?;
        self.upload(&bundle.0, &s3, log).await?;

        let apps = eb
            .describe_applications()
            .application_names(&self.app)
            .send()
            .await
            .map_err(|e| api_error(NAME, "DescribeApplications", &e))?;
        if !apps
            .applications()
            .iter()
            .any(|a| a.application_name() == Some(self.app.as_str()))
        {
            log.line(&format!(
                "elasticbeanstalk: creating application {}",
                self.app
            ));
            eb.create_application()
                .application_name(&self.app)
                .send()
                .await
                .map_err(|e| api_error(NAME, "CreateApplication", &e))?;
        }
        let started = DateTime::from_secs(ctx.now.saturating_sub(1) as i64);
        eb.create_application_version()
            .application_name(&self.app)
            .version_label(&self.label)
            .description(&self.description)
            .source_bundle(
                S3Location::builder()
                    .s3_bucket(&self.bucket)
                    .s3_key(self.key())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error(NAME, "CreateApplicationVersion", &e))?;
        log.line(&format!(
            "elasticbeanstalk: created version {} of {}",
            self.label, self.app
        ));
        if self.only_create_app_version {
            return Ok(format!("version {} of {} created", self.label, self.app));
        }
        let Some(env) = &self.env else {
            return Ok(format!("version {} of {} created", self.label, self.app));
        };
        let envs = eb
            .describe_environments()
            .application_name(&self.app)
            .environment_names(env)
            .include_deleted(false)
            .send()
            .await
            .map_err(|e| api_error(NAME, "DescribeEnvironments", &e))?;
        let exists = envs.environments().iter().any(|e| {
            e.environment_name() == Some(env.as_str())
                && e.application_name().is_none_or(|a| a == self.app)
                && e.status().map(|s| s.as_str()) != Some("Terminated")
        });
        let require_label = if exists {
            eb.update_environment()
                .application_name(&self.app)
                .environment_name(env)
                .version_label(&self.label)
                .send()
                .await
                .map_err(|e| api_error(NAME, "UpdateEnvironment", &e))?;
            log.line(&format!(
                "elasticbeanstalk: updating environment {env} to {}",
                self.label
            ));
            true
        } else {
            let Some(stack) = &self.solution_stack else {
                return Err(Error::Failed {
                    provider: NAME,
                    message: format!(
                        "environment {env} does not exist in application {} (create it, or set solution_stack to have Slipway create it)",
                        self.app
                    ),
                });
            };
            eb.create_environment()
                .application_name(&self.app)
                .environment_name(env)
                .version_label(&self.label)
                .solution_stack_name(stack)
                .send()
                .await
                .map_err(|e| api_error(NAME, "CreateEnvironment", &e))?;
            log.line(&format!(
                "elasticbeanstalk: creating environment {env} ({stack})"
            ));
            false
        };
        if self.wait {
            self.wait_until_ready(ctx, &eb, env, require_label, started, log)
                .await?;
            return Ok(format!(
                "environment {env} is Ready with version {}",
                self.label
            ));
        }
        Ok(format!(
            "environment {env} is updating to version {}",
            self.label
        ))
    }
}
