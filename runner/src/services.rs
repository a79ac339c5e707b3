//! The `services:` table: Travis service names mapped to official images with Travis's defaults.
//!
//! Travis starts services on the build VM with fixed defaults (PostgreSQL user `postgres` without
//! a password, MySQL user `root` without a password, …). Slipway starts the official image of
//! each as a sidecar sharing the job's network namespace, so scripts reach it on `localhost` and
//! by its name, and waits for the readiness check before the job starts. Tests and operators can
//! replace any entry through [`crate::RunnerOptions::service_overrides`].

use crate::executor::ServiceSpec;

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDefault {
    /// The name used in `services:`.
    pub name: &'static str,
    /// The official image.
    pub image: &'static str,
    /// Other host names it answers to.
    pub aliases: &'static [&'static str],
    /// Environment giving Travis's defaults.
    pub env: &'static [(&'static str, &'static str)],
    /// The port it listens on.
    pub port: u16,
    /// Readiness check run inside the service container.
    pub ready: &'static [&'static str],
    /// Travis's defaults, in words, for the docs.
    pub notes: &'static str,
}

/// Every service Slipway knows, besides `docker` (which gives the job the engine instead).
pub const SERVICES: &[ServiceDefault] = &[
    ServiceDefault {
        name: "postgresql",
        image: "postgres:16",
        aliases: &["postgres"],
        env: &[("POSTGRES_HOST_AUTH_METHOD", "trust")],
        port: 5432,
        ready: &["pg_isready", "-h", "127.0.0.1", "-U", "postgres"],
        notes: "user `postgres`, no password, database `postgres`",
    },
    ServiceDefault {
        name: "mysql",
        image: "mysql:8.0",
        aliases: &[],
        env: &[("MYSQL_ALLOW_EMPTY_PASSWORD", "yes")],
        port: 3306,
        ready: &["mysqladmin", "ping", "-h", "127.0.0.1", "--silent"],
        notes: "user `root`, no password",
    },
    ServiceDefault {
        name: "mariadb",
        image: "mariadb:11",
        aliases: &[],
        env: &[("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", "yes")],
        port: 3306,
        ready: &["healthcheck.sh", "--connect"],
        notes: "user `root`, no password",
    },
    ServiceDefault {
        name: "redis",
        image: "redis:7",
        aliases: &["redis-server"],
        env: &[],
        port: 6379,
        ready: &["redis-cli", "-h", "127.0.0.1", "ping"],
        notes: "no password",
    },
    ServiceDefault {
        name: "mongodb",
        image: "mongo:7",
        aliases: &["mongo"],
        env: &[],
        port: 27017,
        ready: &["mongosh", "--quiet", "--eval", "db.runCommand({ping:1})"],
        notes: "no authentication",
    },
    ServiceDefault {
        name: "rabbitmq",
        image: "rabbitmq:3",
        aliases: &[],
        env: &[],
        port: 5672,
        ready: &["rabbitmq-diagnostics", "-q", "ping"],
        notes: "user `guest`, password `guest`, vhost `/`",
    },
    ServiceDefault {
        name: "memcached",
        image: "memcached:1",
        aliases: &[],
        env: &[],
        port: 11211,
        ready: &[],
        notes: "no authentication; ready when started",
    },
    ServiceDefault {
        name: "elasticsearch",
        image: "elasticsearch:8.13.4",
        aliases: &[],
        env: &[
            ("discovery.type", "single-node"),
            ("xpack.security.enabled", "false"),
            ("ES_JAVA_OPTS", "-Xms512m -Xmx512m"),
        ],
        port: 9200,
        ready: &["curl", "-sf", "http://127.0.0.1:9200/_cluster/health"],
        notes: "single node, security off, 512 MiB heap",
    },
    ServiceDefault {
        name: "cassandra",
        image: "cassandra:4",
        aliases: &[],
        env: &[("MAX_HEAP_SIZE", "512M"), ("HEAP_NEWSIZE", "128M")],
        port: 9042,
        ready: &["cqlsh", "-e", "describe keyspaces"],
        notes: "no authentication",
    },
];

/// The sidecar for a `services:` name, or `None` when Slipway does not know it.
pub fn default_spec(name: &str) -> Option<ServiceSpec> {
    let d = SERVICES.iter().find(|s| s.name == name)?;
    Some(ServiceSpec {
        name: d.name.into(),
        image: d.image.into(),
        env: d
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cmd: None,
        ready: (!d.ready.is_empty()).then(|| d.ready.iter().map(|s| s.to_string()).collect()),
        aliases: d.aliases.iter().map(|s| s.to_string()).collect(),
    })
}

/// The Markdown table of services, as `docs/runner.md` carries it.
pub fn docs_table() -> String {
    let mut out = String::from(
        "| service | image | also resolves as | port | readiness check | defaults |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for s in SERVICES {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} | {} |\n",
            s.name,
            s.image,
            if s.aliases.is_empty() {
                "".to_string()
            } else {
                s.aliases
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            s.port,
            if s.ready.is_empty() {
                "none".to_string()
            } else {
                format!("`{}`", s.ready.join(" "))
            },
            s.notes
        ));
    }
    out
}
