//! Shared AWS plumbing: credentials (options, then the job's environment, then the server's
//! keys for the repository, or on one's own machine the standard chain), the region, the HTTP
//! client (rustls with ring) and one-line API errors.

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::Deployer;
use crate::calls::ApiCall;
use crate::context::DeployContext;
use crate::error::{Error, one_line};
use crate::options::{Options, Text};
use slipway_runner::DeployLog;

/// dpl's default region.
pub(crate) const DEFAULT_REGION: &str = "us-east-1";

/// S3's canned ACLs, as the API spells them (dpl and Travis write them with `_`).
pub(crate) const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// The canned ACL `given` names (`public_read` or `public-read`), if S3 has it.
pub(crate) fn canned_acl(given: &str) -> Option<String> {
    let canned = given.replace('_', "-");
    CANNED_ACLS.contains(&canned.as_str()).then_some(canned)
}

/// The SDK's credentials for the repository's keys configured on the server.
pub(crate) fn server_credentials(keys: &crate::AwsKeys) -> Credentials {
    Credentials::new(
        &keys.access_key_id,
        keys.secret_access_key.expose(),
        keys.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "slipway-server-repository",
    )
}

/// Where a provider's AWS credentials come from, in dpl's order of precedence.
#[derive(Clone, Debug)]
pub(crate) struct AwsAuth {
    /// The provider deploying with them.
    pub provider: &'static str,
    /// The region requests are signed for.
    pub region: String,
    /// `access_key_id` / `secret_access_key` from the options, when both are given.
    pub keys: Option<(Text, Text)>,
    /// A service endpoint from the options (`endpoint:`), overriding the context's.
    pub endpoint: Option<String>,
}

impl AwsAuth {
    /// Reads `access_key_id`, `secret_access_key`, `region` and `endpoint`.
    pub(crate) fn read(o: &mut Options<'_>) -> Result<Self, Error> {
        let id = o.text(&["access_key_id"])?;
        let secret = o.text(&["secret_access_key"])?;
        let region = o
            .string(&["region"])?
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let endpoint = o.string(&["endpoint"])?;
        let keys = match (id, secret) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(crate::error::option_error(
                    "aws",
                    "secret_access_key",
                    "is required when access_key_id is given",
                ));
            }
            (None, Some(_)) => {
                return Err(crate::error::option_error(
                    "aws",
                    "access_key_id",
                    "is required when secret_access_key is given",
                ));
            }
        };
        Ok(AwsAuth {
            provider: o.provider(),
            region,
            keys,
            endpoint,
        })
    }

    /// The dry run's first call: where the credentials come from and the region they sign for.
    pub(crate) fn credentials_call(&self, ctx: &DeployContext) -> ApiCall {
        ApiCall::new("aws", "Credentials")
            .param("source", self.describe(ctx))
            .param("region", &self.region)
    }

    /// The service endpoint: the options' (`endpoint:`), else the one configured for the service.
    pub(crate) fn endpoint_or(&self, configured: Option<&String>) -> Option<String> {
        self.endpoint.clone().or_else(|| configured.cloned())
    }

    /// Where the credentials come from, for dry runs and logs (never the values).
    pub(crate) fn describe(&self, ctx: &DeployContext) -> String {
        if let Some((id, _)) = &self.keys {
            return format!("options (access_key_id {})", id.shown());
        }
        if ctx.env.contains_key("AWS_ACCESS_KEY_ID") {
            return "the job's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_owned();
        }
        if let Some(keys) = ctx.credentials.aws() {
            return format!(
                "the server's [repos.deploy] keys for {} (access key id {})",
                ctx.repo, keys.access_key_id
            );
        }
        if ctx.credentials.ambient() {
            return "the standard AWS credential chain of this machine".to_owned();
        }
        format!("none: no AWS credentials are configured for {}", ctx.repo)
    }

    /// Loads the SDK configuration: HTTPS client, region and credentials, in dpl's order: the
    /// options, the job's environment, then what the server configured for the repository, or
    /// (only on one's own machine) the standard chain. On a server with none of these it fails
    /// before anything is sent.
    pub(crate) async fn sdk_config(
        &self,
        provider: &'static str,
        ctx: &DeployContext,
    ) -> Result<SdkConfig, Error> {
        let mut loader = sdk_loader(&self.region);
        if let Some((id, secret)) = &self.keys {
            loader = loader.credentials_provider(Credentials::new(
                id.expose(),
                secret.expose(),
                None,
                None,
                "slipway-deploy-options",
            ));
        } else if let (Some(id), Some(secret)) = (
            ctx.env.get("AWS_ACCESS_KEY_ID"),
            ctx.env.get("AWS_SECRET_ACCESS_KEY"),
        ) {
            loader = loader.credentials_provider(Credentials::new(
                id.expose(),
                secret.expose(),
                ctx.env
                    .get("AWS_SESSION_TOKEN")
                    .map(|t| t.expose().to_owned()),
                None,
                "slipway-job-environment",
            ));
        } else if let Some(keys) = ctx.credentials.aws() {
            loader = loader.credentials_provider(server_credentials(keys));
        } else if !ctx.credentials.ambient() {
            return Err(Error::NoCredentials {
                provider,
                kind: "AWS",
                repo: ctx.repo.clone(),
                fix: crate::credentials::AWS_FIX,
            });
        }
        Ok(loader.load().await)
    }
}

/// The SDK's configuration loader for `region`, with the HTTPS client every AWS call uses (rustls
/// with ring).
pub(crate) fn sdk_loader(region: &str) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .http_client(slipway_http::aws::client())
}

/// Turns an SDK error into one line: the service's code and message, else the transport error.
pub(crate) fn api_error<E>(
    provider: &'static str,
    action: &str,
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let message = match (err.code(), err.message(), status) {
        (Some(code), Some(message), _) => format!("{code}: {message}"),
        (Some(code), None, Some(s)) => format!("{code} (HTTP {s})"),
        (Some(code), None, None) => code.to_owned(),
        (None, Some(message), _) => message.to_owned(),
        (None, None, Some(s)) => format!("HTTP {s} with an unreadable error body"),
        (None, None, None) => DisplayErrorContext(err).to_string(),
    };
    Error::Api {
        provider,
        action: action.to_owned(),
        message: one_line(&message),
    }
}

/// A provider deploying to an AWS service with the credentials [`AwsAuth`] reads. What they all
/// do alike, saying where the credentials come from and for which region (first of the dry
/// run's calls, first line of the deploy's log), is their [`Deployer`] implementation, once.
#[async_trait]
pub(crate) trait AwsDeployer: Send + Sync + std::fmt::Debug {
    /// The deploy's credentials, region and provider.
    fn auth(&self) -> &AwsAuth;

    /// The calls after the credentials' (see [`Deployer::dry_run`]).
    fn service_calls(&self, ctx: &DeployContext) -> Vec<ApiCall>;

    /// The deploy once the credentials are named (see [`Deployer::deploy`]).
    async fn run(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error>;
}

#[async_trait]
impl<T: AwsDeployer> Deployer for T {
    fn provider(&self) -> &'static str {
        self.auth().provider
    }

    fn dry_run(&self, ctx: &DeployContext) -> Vec<ApiCall> {
        let mut calls = vec![self.auth().credentials_call(ctx)];
        calls.extend(self.service_calls(ctx));
        calls
    }

    fn credentials(&self, ctx: &DeployContext) -> String {
        self.auth().describe(ctx)
    }

    async fn deploy(&self, ctx: &DeployContext, log: &dyn DeployLog) -> Result<String, Error> {
        let auth = self.auth();
        log.line(&format!(
            "{}: credentials from {}, region {}",
            auth.provider,
            auth.describe(ctx),
            auth.region
        ));
        self.run(ctx, log).await
    }
}
