//! Every key a pipeline file may hold, as data: the single source lint and the JSON schema read.
//!
//! The tables follow what Travis CI accepts (names, aliases, expected shapes, deprecations, and the
//! options of each `dpl` deploy provider) plus Slipway's own extensions (`image`, the `ecs` and `gke`
//! providers). Each key also says whether Slipway acts on it yet, so lint can warn about features that
//! would be silently ignored. Nothing here is code that walks a file: `lint` and `schema` both read
//! these tables, so the two can never disagree.

/// What shape of value a key expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Anything at all; not checked.
    Any,
    /// A single scalar, read as a string (numbers such as `3.10` keep their text).
    Str,
    /// A boolean (`true`/`false`; YAML 1.1's `yes`/`no`/`on`/`off` too).
    Bool,
    /// A number.
    Num,
    /// One string or a list of strings (scripts, packages, versions).
    Strs,
    /// One value from a fixed list; anything else is an error because it cannot be honoured.
    Enum(&'static EnumSpec),
    /// One value or a list of values from a fixed list.
    Enums(&'static EnumSpec),
    /// A secret: `{secure: <base64>}`, or a `$VARIABLE`; a plain string leaks it into the file.
    Secure,
    /// Like [`Ty::Secure`], but a plain string is fine (user names, account ids).
    SecureLax,
    /// One secret or a list of them.
    Secures,
    /// A travis-conditions expression (`branch = main AND type = push`).
    Condition,
    /// A string, or a map of branch name to string (`app: {main: prod, dev: staging}`).
    StrOrMap,
    /// A free-form map (its keys are the user's, e.g. `repos` for R).
    Map,
    /// `env:` at the root: variables, or `{global, jobs}`.
    Env,
    /// Environment variable definitions: `A=1 B=2`, a list of those, a map, or `{secure: …}`.
    EnvVars,
    /// `cache:` — `false`, a cache name (`bundler`), a list of names, or a map.
    Cache,
    /// A map with known keys.
    Object(&'static Obj),
    /// One value of the inner shape or a list of them.
    OneOrMany(&'static Ty),
    /// `jobs:` (alias `matrix:`): a map of include/exclude/allow_failures, or a list of jobs.
    Jobs,
    /// `deploy:`: one provider or a list, each a map with `provider:` and that provider's options.
    Deploys,
    /// Notification targets: one or a list, each plain text in the target's form or `secure:`.
    Targets(Target),
    /// Notification template lines with Travis's `%{placeholders}`.
    Template,
}

/// The form of a notification target's plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An email address (a plain one is fine: addresses are not secret).
    Email,
    /// A Slack room, `account:token#channel`; the token is a secret.
    SlackRoom,
    /// An `http://` or `https://` URL, or `{url: …, msteams: …}`.
    WebhookUrl,
    /// An IRC channel, `[irc://|ircs://]host[:port]#channel`.
    IrcChannel,
}

/// A closed set of values, with the aliases Travis also accepts.
#[derive(Debug, PartialEq, Eq)]
pub struct EnumSpec {
    /// Canonical values.
    pub values: &'static [&'static str],
    /// `(alias, canonical)` pairs, e.g. `("postgres", "postgresql")`.
    pub aliases: &'static [(&'static str, &'static str)],
}

impl EnumSpec {
    /// True when `value` (compared case-insensitively, as Travis downcases) is allowed.
    pub fn accepts(&self, value: &str) -> bool {
        let v = value.to_ascii_lowercase();
        self.values.contains(&v.as_str()) || self.aliases.iter().any(|(a, _)| *a == v)
    }
}

/// A map with a known set of keys.
#[derive(Debug, PartialEq, Eq)]
pub struct Obj {
    /// Groups of keys (several groups let the root share the job and language keys).
    pub groups: &'static [&'static [Key]],
    /// A non-map value stands for this key (`stage: test` means `stage: {name: test}`).
    pub prefix: Option<&'static str>,
    /// `true`/`false` alone switch the feature on or off.
    pub toggle: bool,
}

impl Obj {
    /// Every key of the map, in declaration order.
    pub fn keys(&self) -> impl Iterator<Item = &'static Key> + '_ {
        self.groups.iter().flat_map(|g| g.iter())
    }

    /// Finds a key by its name or one of its aliases.
    pub fn find(&self, name: &str) -> Option<&'static Key> {
        self.keys()
            .find(|k| k.name == name)
            .or_else(|| self.keys().find(|k| k.aliases.contains(&name)))
    }
}

/// Whether Slipway acts on a key yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Slipway does what the key asks.
    Yes,
    /// Accepted for compatibility but has no effect in Slipway (the reason says why).
    NoEffect(&'static str),
    /// Not implemented yet: lint warns so the omission is never silent.
    NotYet,
    /// Cannot be honoured in a Linux container at all: lint and the job log say why and what to
    /// do instead, so the omission is never silent.
    Cannot {
        /// Why a container cannot do what the key asks.
        why: &'static str,
        /// What to write instead.
        instead: &'static str,
    },
}

/// One key of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The canonical name.
    pub name: &'static str,
    /// Other names that mean the same key (`matrix` for `jobs`, `node` for `node_js`).
    pub aliases: &'static [&'static str],
    /// What the value must look like.
    pub ty: Ty,
    /// Why the key is deprecated and what to use instead, when it is.
    pub deprecated: Option<&'static str>,
    /// Whether Slipway honours it.
    pub support: Support,
    /// A one-line description for the schema and docs.
    pub summary: &'static str,
    /// Whether a list of values multiplies jobs (matrix expansion).
    pub expands: bool,
}

/// Builds a supported key with no aliases; the table entries below read as one line each.
pub const fn key(name: &'static str, ty: Ty) -> Key {
    Key {
        name,
        aliases: &[],
        ty,
        deprecated: None,
        support: Support::Yes,
        summary: "",
        expands: false,
    }
}

impl Key {
    /// Adds alternative names.
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    /// Marks the key deprecated, saying what to do instead.
    pub const fn deprecated(mut self, why: &'static str) -> Self {
        self.deprecated = Some(why);
        self
    }
    /// Marks the key as not acted on by Slipway yet.
    pub const fn not_yet(mut self) -> Self {
        self.support = Support::NotYet;
        self
    }
    /// Marks the key as impossible to honour in a container, saying why and what to do instead.
    pub const fn cannot(mut self, why: &'static str, instead: &'static str) -> Self {
        self.support = Support::Cannot { why, instead };
        self
    }
    /// Marks the key as accepted but without effect in Slipway.
    pub const fn no_effect(mut self, why: &'static str) -> Self {
        self.support = Support::NoEffect(why);
        self
    }
    /// Adds the one-line description.
    pub const fn summary(mut self, summary: &'static str) -> Self {
        self.summary = summary;
        self
    }
    /// Marks a key whose list of values expands the job matrix.
    pub const fn expands(mut self) -> Self {
        self.expands = true;
        self
    }
}

/// A deploy provider and its options.
#[derive(Debug, PartialEq, Eq)]
pub struct Provider {
    /// The `provider:` value.
    pub name: &'static str,
    /// Options the provider cannot work without.
    pub required: &'static [&'static str],
    /// Whether Slipway can run this provider itself.
    pub support: Support,
    /// The provider's own options (the common ones are in [`DEPLOY_COMMON`]).
    pub options: &'static [Key],
}

impl Provider {
    /// The option an option name stands for, as dpl reads it: itself, or the option it is an
    /// alias of (`api_key` → `token` for `releases`). This table is the one place aliases live:
    /// the lint, the plan's normalised options and the providers' readers all use it.
    pub fn canonical_option<'a>(&self, name: &'a str) -> &'a str {
        match self.options.iter().find(|k| k.aliases.contains(&name)) {
            Some(key) if !self.options.iter().any(|k| k.name == name) => key.name,
            _ => name,
        }
    }

    /// Every name `option` may be written under: itself first, then its aliases.
    pub fn option_names<'a>(&self, option: &'a str) -> Vec<&'a str> {
        let aliases = self
            .options
            .iter()
            .find(|k| k.name == option)
            .map_or(&[][..], |k| k.aliases);
        std::iter::once(option)
            .chain(aliases.iter().copied())
            .collect()
    }
}

/// Looks a deploy provider up by name (case-insensitive, as Travis downcases it).
pub fn provider(name: &str) -> Option<&'static Provider> {
    let name = name.to_ascii_lowercase();
    PROVIDERS.iter().find(|p| p.name == name)
}

const fn opt(name: &'static str, ty: Ty) -> Key {
    key(name, ty)
}

/// Where a value of the map may be given as a plain script line instead.
const STRS: Ty = Ty::Strs;

/// Travis's language names.
pub static LANGUAGES: EnumSpec = EnumSpec {
    values: &[
        "android",
        "c",
        "clojure",
        "cpp",
        "crystal",
        "csharp",
        "d",
        "dart",
        "elixir",
        "elm",
        "erlang",
        "generic",
        "go",
        "groovy",
        "hack",
        "haskell",
        "haxe",
        "java",
        "julia",
        "matlab",
        "nix",
        "node_js",
        "perl",
        "perl6",
        "php",
        "python",
        "r",
        "ruby",
        "objective-c",
        "rust",
        "scala",
        "shell",
        "smalltalk",
    ],
    aliases: &[
        ("c++", "cpp"),
        ("golang", "go"),
        ("jvm", "java"),
        ("javascript", "node_js"),
        ("js", "node_js"),
        ("node", "node_js"),
        ("objective_c", "objective-c"),
        ("swift", "objective-c"),
        ("bash", "shell"),
        ("minimal", "shell"),
        ("sh", "shell"),
    ],
};

/// Operating systems.
pub static OSES: EnumSpec = EnumSpec {
    values: &["linux", "osx", "windows", "freebsd", "linux-ppc64le"],
    aliases: &[
        ("ubuntu", "linux"),
        ("mac", "osx"),
        ("macos", "osx"),
        ("macosx", "osx"),
        ("ios", "osx"),
        ("win", "windows"),
        ("bsd", "freebsd"),
    ],
};

/// Linux distributions (and the Windows image name).
pub static DISTS: EnumSpec = EnumSpec {
    values: &[
        "trusty",
        "precise",
        "xenial",
        "bionic",
        "focal",
        "jammy",
        "noble",
        "server-2016",
        "rhel8",
    ],
    aliases: &[],
};

/// CPU architectures.
pub static ARCHES: EnumSpec = EnumSpec {
    values: &[
        "amd64",
        "arm64",
        "arm64-graviton2",
        "ppc64le",
        "i386",
        "s390x",
    ],
    aliases: &[
        ("x86_64", "amd64"),
        ("x64", "amd64"),
        ("power", "ppc64le"),
        ("ppc", "ppc64le"),
        ("ppc64", "ppc64le"),
        ("x86", "i386"),
    ],
};

/// Service containers started next to a job.
pub static SERVICES: EnumSpec = EnumSpec {
    values: &[
        "cassandra",
        "couchdb",
        "docker",
        "elasticsearch",
        "memcached",
        "mongodb",
        "mysql",
        "neo4j",
        "postgresql",
        "rabbitmq",
        "redis",
        "riak",
        "xvfb",
        "cri-dockerd",
    ],
    aliases: &[
        ("memcache", "memcached"),
        ("postgres", "postgresql"),
        ("rabbitmq-server", "rabbitmq"),
        ("redis-server", "redis"),
    ],
};

/// How often a notification is sent.
pub static FREQUENCY: EnumSpec = EnumSpec {
    values: &["always", "never", "change"],
    aliases: &[
        ("changed", "change"),
        ("true", "always"),
        ("false", "never"),
    ],
};

/// Git checkout strategies.
pub static GIT_STRATEGY: EnumSpec = EnumSpec {
    values: &["clone", "tarball"],
    aliases: &[],
};

/// Import merge modes.
pub static IMPORT_MODES: EnumSpec = EnumSpec {
    values: &[
        "merge",
        "deep_merge",
        "deep_merge_append",
        "deep_merge_prepend",
    ],
    aliases: &[],
};

/// The phases of a job, in the order they run: each holds shell commands.
pub static PHASES: &[Key] = &[
    key("before_install", STRS).summary("Commands run before the install phase"),
    key("install", STRS).summary("Commands that install dependencies"),
    key("before_script", STRS).summary("Commands run before the script phase"),
    key("script", STRS).summary("The build and test commands; a failure fails the job"),
    key("before_cache", STRS).summary("Commands run before the cache is stored"),
    key("after_success", STRS).summary("Commands run when the script phase passed"),
    key("after_failure", STRS).summary("Commands run when the script phase failed"),
    key("before_deploy", STRS).summary("Commands run before deploying"),
    key("after_deploy", STRS).summary("Commands run after deploying"),
    key("after_script", STRS).summary("Commands run last, whatever the result"),
];

/// Keys every job has, at the root and in `jobs.include` entries.
pub static JOB: &[Key] = &[
    key("image", Ty::Str)
        .summary("Slipway: the container image the job runs in (overrides the language's image)"),
    key("services", Ty::Enums(&SERVICES)).summary("Service containers started next to the job"),
    key("if", Ty::Condition).summary("Run the job only when this condition holds"),
    key("branches", Ty::Object(&BRANCHES)).summary("Branches to build (safelist or blocklist)"),
    key("cache", Ty::Cache).summary("Directories and package caches kept between builds"),
    key("deploy", Ty::Deploys).summary("Where to deploy after a successful script phase"),
    key("git", Ty::Object(&GIT)).summary("How the repository is checked out"),
    key("addons", Ty::Object(&ADDONS))
        .summary("Travis add-ons (apt packages, browsers, databases, …)"),
    key("virt", Ty::Str)
        .aliases(&["virtualization"])
        .no_effect("jobs always run in containers")
        .summary("Virtualization type"),
    key("group", Ty::Str)
        .no_effect("Travis image groups do not apply")
        .summary("Travis image group"),
    key("workspaces", Ty::Object(&WORKSPACES)).summary("Share files between jobs of a build"),
    key("keys", Ty::Strs)
        .not_yet()
        .summary("Key names to fetch from the key store"),
];

/// Language support keys: runtime versions and tool options.
///
/// At the root, the version keys take a list and expand the matrix; in a `jobs.include` entry
/// each takes one version.
pub static LANGUAGE_ROOT: &[Key] = &LANGUAGE;

/// The language keys as the root writes them.
const LANGUAGE: [Key; 75] = [
    key("node_js", STRS)
        .aliases(&["node"])
        .expands()
        .summary("Node.js versions"),
    key("npm_args", Ty::Str),
    key("python", STRS).expands().summary("Python versions"),
    key("virtualenv", Ty::Object(&VIRTUALENV)).aliases(&["virtual_env"]),
    key("rvm", STRS)
        .aliases(&["ruby", "rbenv"])
        .expands()
        .summary("Ruby versions"),
    key("gemfile", STRS).aliases(&["gemfiles"]).expands(),
    key("bundler_args", Ty::Str),
    key("jdk", STRS).expands().summary("JDK versions"),
    key("go", STRS).expands().summary("Go versions"),
    key("gobuild_args", Ty::Str),
    key("go_import_path", Ty::Str),
    key("gimme_config", Ty::Map),
    key("php", STRS).expands().summary("PHP versions"),
    key("composer_args", Ty::Str),
    key("hhvm", STRS).expands(),
    key("perl", STRS).expands(),
    key("perl6", STRS).expands(),
    key("ghc", STRS).expands(),
    key("julia", STRS).expands(),
    key("otp_release", STRS).expands(),
    key("elixir", STRS).expands(),
    key("crystal", STRS).expands(),
    key("d", STRS).expands(),
    key("dart", STRS).expands(),
    key("dart_task", Ty::Any).expands(),
    key("with_content_shell", Ty::Bool),
    key("dotnet", STRS).expands(),
    key("mono", STRS).expands(),
    key("solution", STRS).expands(),
    key("rust", STRS).expands(),
    key("scala", STRS).expands(),
    key("sbt_args", Ty::Str),
    key("lein", Ty::Str),
    key("haxe", STRS).expands(),
    key("hxml", STRS),
    key("neko", Ty::Str),
    key("nix", STRS).expands(),
    key("matlab", STRS).expands(),
    key("elm", STRS).expands(),
    key("elm_format", Ty::Str),
    key("elm_test", Ty::Str),
    key("smalltalk", STRS).expands(),
    key("smalltalk_config", STRS).expands(),
    key("smalltalk_vm", STRS).expands(),
    key("smalltalk_edge", Ty::Map),
    key("android", Ty::Map),
    key("xcode_scheme", STRS).expands(),
    key("xcode_sdk", STRS).expands(),
    key("xcode_destination", Ty::Str),
    key("xcode_project", Ty::Str),
    key("xcode_workspace", Ty::Str),
    key("xctool_args", Ty::Str),
    key("podfile", Ty::Str),
    key("r", STRS).expands(),
    key("r_packages", STRS),
    key("r_binary_packages", STRS),
    key("r_github_packages", STRS),
    key("apt_packages", STRS),
    key("bioc_packages", STRS),
    key("brew_packages", STRS),
    key("bioc", Ty::Str),
    key("bioc_check", Ty::Bool),
    key("bioc_required", Ty::Bool).aliases(&["use_bioc"]),
    key("bioc_use_devel", Ty::Bool),
    key("cran", Ty::Str),
    key("disable_homebrew", Ty::Bool),
    key("latex", Ty::Bool),
    key("pandoc", Ty::Bool),
    key("pandoc_version", Ty::Str),
    key("r_build_args", Ty::Str),
    key("r_check_args", Ty::Str),
    key("r_check_revdep", Ty::Bool),
    key("warnings_are_errors", Ty::Bool),
    key("remotes", Ty::Str),
    key("repos", Ty::Map),
];

/// The same language keys as they appear in a single job: one version each.
pub static LANGUAGE_JOB: &[Key] = &one_version_each(LANGUAGE);

/// The language keys as a job writes them: a list of versions that expands the matrix at the root
/// is one version in a job (Smalltalk's configs and VMs stay lists), and the summaries are the
/// root's alone.
const fn one_version_each<const N: usize>(root: [Key; N]) -> [Key; N] {
    let mut job = root;
    let mut i = 0;
    while i < N {
        let k = root[i];
        let ty = match k.ty {
            Ty::Strs if k.expands && !stays_a_list(k.name) => Ty::Str,
            ty => ty,
        };
        job[i] = Key {
            ty,
            expands: false,
            summary: "",
            ..k
        };
        i += 1;
    }
    job
}

/// Keys whose list stays a list in a job: a job may use several Smalltalk configs or VMs.
const LISTS_IN_A_JOB: [&str; 2] = ["smalltalk_config", "smalltalk_vm"];

const fn stays_a_list(name: &str) -> bool {
    let mut i = 0;
    while i < LISTS_IN_A_JOB.len() {
        if same(name.as_bytes(), LISTS_IN_A_JOB[i].as_bytes()) {
            return true;
        }
        i += 1;
    }
    false
}

/// String equality where `==` is not yet usable (a `const fn`).
const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const SUDO_GONE: &str = "The key `sudo` has no effect anymore.";

/// Keys only the root has.
pub static ROOT_ONLY: &[Key] = &[
    key("language", Ty::Enum(&LANGUAGES))
        .summary("Language support: picks the default image and version keys"),
    key("os", Ty::Enums(&OSES))
        .expands()
        .summary("Operating systems; Slipway runs Linux containers"),
    key("dist", Ty::Enum(&DISTS)).summary("Linux distribution of the build environment"),
    key("arch", Ty::Enums(&ARCHES))
        .expands()
        .summary("CPU architectures"),
    key("stack", Ty::Str)
        .no_effect("Travis build stacks do not apply")
        .summary("Travis internal stack"),
    key("sudo", Ty::Any)
        .deprecated(SUDO_GONE)
        .summary("No effect"),
    key("import", Ty::OneOrMany(&IMPORT))
        .summary("Shared configuration imported from other files, merged before planning"),
    key("env", Ty::Env).summary("Environment variables; `jobs` entries expand the matrix"),
    key("compiler", STRS).expands().summary("C/C++ compilers"),
    key("osx_image", STRS).expands().summary("macOS images"),
    key("stages", Ty::OneOrMany(&STAGE_TY)).summary("Stage order and stage conditions"),
    key("jobs", Ty::Jobs)
        .aliases(&["matrix"])
        .summary("Extra jobs, exclusions, allowed failures"),
    key("notifications", Ty::Object(&NOTIFICATIONS)).summary("Build result notifications"),
    key("version", Ty::Str).summary("Config format version constraint (`~> 1.0`)"),
    key("vm", Ty::Object(&VM))
        .no_effect("VM sizes do not apply to containers")
        .summary("Build VM size"),
    key("conditions", Ty::Str)
        .no_effect("only the v1 condition language exists")
        .summary("Condition language version"),
    key("filter_secrets", Ty::Bool).summary("Whether secrets are masked in logs"),
    key("trace", Ty::Bool).summary("Trace the build script"),
    key("perforce_test_path", Ty::Str).not_yet(),
    key("vault", Ty::Object(&VAULT))
        .not_yet()
        .summary("Secrets from HashiCorp Vault"),
    key("keep_netrc", Ty::Bool).no_effect("no .netrc is written"),
];

/// The root of a pipeline file.
pub static ROOT: Obj = Obj {
    groups: &[ROOT_ONLY, JOB, PHASES, LANGUAGE_ROOT],
    prefix: None,
    toggle: false,
};

/// Keys a `jobs.include` (or exclude / allow_failures) entry may have besides the job keys.
pub static ENTRY_ONLY: &[Key] = &[
    key("language", Ty::Enum(&LANGUAGES)),
    key("os", Ty::Enum(&OSES)),
    key("dist", Ty::Enum(&DISTS)),
    key("arch", Ty::Enum(&ARCHES)),
    key("osx_image", Ty::Str),
    key("sudo", Ty::Any).deprecated(SUDO_GONE),
    key("vm", Ty::Object(&VM)).no_effect("VM sizes do not apply to containers"),
    key("env", Ty::EnvVars),
    key("compiler", Ty::Str),
    key("name", Ty::Str).summary("The job's display name"),
    key("stage", Ty::Str).summary("The stage the job belongs to"),
    key("keep_netrc", Ty::Bool).no_effect("no .netrc is written"),
    key("allow_failure", Ty::Bool).summary("Whether the job may fail without failing the build"),
    key("vault", Ty::Object(&VAULT)).not_yet(),
];

/// One entry of `jobs.include`, `jobs.exclude` or `jobs.allow_failures`.
pub static JOB_ENTRY: Obj = Obj {
    groups: &[ENTRY_ONLY, JOB, PHASES, LANGUAGE_JOB],
    prefix: None,
    toggle: false,
};

/// The map form of `jobs:`.
pub static JOBS: Obj = Obj {
    groups: &[&[
        key("include", Ty::OneOrMany(&JOB_ENTRY_TY)).summary("Jobs added to the matrix"),
        key("exclude", Ty::OneOrMany(&JOB_ENTRY_TY)).summary("Matrix jobs removed again"),
        key("allow_failures", Ty::OneOrMany(&JOB_ENTRY_TY))
            .aliases(&["allowed_failures"])
            .summary("Jobs that may fail"),
        key("fast_finish", Ty::Bool)
            .aliases(&["fast_failure"])
            .summary("Finish once only allowed failures are left"),
    ]],
    prefix: None,
    toggle: false,
};

/// A job entry as a type.
pub static JOB_ENTRY_TY: Ty = Ty::Object(&JOB_ENTRY);

/// A stage: a name, or a name with a condition.
pub static STAGE: Obj = Obj {
    groups: &[&[key("name", Ty::Str), key("if", Ty::Condition)]],
    prefix: Some("name"),
    toggle: false,
};
static STAGE_TY: Ty = Ty::Object(&STAGE);

/// An imported config file.
pub static IMPORT_OBJ: Obj = Obj {
    groups: &[&[
        key("source", Ty::Str),
        key("mode", Ty::Enum(&IMPORT_MODES)),
        key("if", Ty::Condition),
    ]],
    prefix: Some("source"),
    toggle: false,
};
static IMPORT: Ty = Ty::Object(&IMPORT_OBJ);

/// The map form of root `env:`.
pub static ENV: Obj = Obj {
    groups: &[&[
        key("global", Ty::EnvVars).summary("Variables set in every job"),
        key("jobs", Ty::EnvVars)
            .aliases(&["matrix"])
            .expands()
            .summary("One job per entry"),
    ]],
    prefix: None,
    toggle: false,
};

/// R's many options, left out when guessing what a misspelled key meant (as Travis does).
pub static R_KEYS: &[&str] = &[
    "r",
    "r_packages",
    "r_binary_packages",
    "r_github_packages",
    "apt_packages",
    "bioc_packages",
    "brew_packages",
    "bioc",
    "bioc_check",
    "bioc_required",
    "bioc_use_devel",
    "cran",
    "disable_homebrew",
    "latex",
    "pandoc",
    "pandoc_version",
    "r_build_args",
    "r_check_args",
    "r_check_revdep",
    "warnings_are_errors",
    "remotes",
    "repos",
];

/// Branch safelist / blocklist.
pub static BRANCHES: Obj = Obj {
    groups: &[&[key("only", STRS), key("except", STRS).aliases(&["exclude"])]],
    prefix: Some("only"),
    toggle: false,
};

/// The map form of `cache:`.
pub static CACHE: Obj = Obj {
    groups: &[&[
        key("directories", STRS),
        key("apt", Ty::Bool),
        key("bundler", Ty::Bool),
        key("cargo", Ty::Bool),
        key("ccache", Ty::Bool),
        key("cocoapods", Ty::Bool),
        key("npm", Ty::Bool),
        key("packages", Ty::Bool),
        key("pip", Ty::Bool),
        key("yarn", Ty::Bool),
        key("timeout", Ty::Num),
        key("edge", Ty::Bool),
        key("branch", Ty::Str),
    ]],
    prefix: None,
    toggle: true,
};

/// `git:` checkout options.
pub static GIT: Obj = Obj {
    groups: &[&[
        key("strategy", Ty::Enum(&GIT_STRATEGY)),
        // Not in travis-yml's schema (Travis warns `unknown_key` but its build script honours it).
        key("clone", Ty::Bool)
            .summary("Skip cloning if given false: the job starts in an empty build dir"),
        key("depth", Ty::Any),
        key("quiet", Ty::Bool),
        key("submodules", Ty::Bool),
        key("symlinks", Ty::Bool),
        key("submodules_depth", Ty::Num),
        key("lfs_skip_smudge", Ty::Bool),
        key("sparse_checkout", Ty::Str),
        key("autocrlf", Ty::Any),
    ]],
    prefix: None,
    toggle: false,
};

/// `vm:` size options.
pub static VM: Obj = Obj {
    groups: &[&[
        key("size", Ty::Str),
        key("create", Ty::Map),
        key("use", Ty::Any),
    ]],
    prefix: None,
    toggle: false,
};

/// `vault:` connection.
pub static VAULT: Obj = Obj {
    groups: &[&[
        key("api_url", Ty::Str),
        key("token", Ty::Secure),
        key("secrets", Ty::Any),
    ]],
    prefix: None,
    toggle: false,
};

/// `workspaces:` for sharing files between jobs.
pub static WORKSPACES: Obj = Obj {
    groups: &[&[key("create", Ty::Map), key("use", STRS)]],
    prefix: None,
    toggle: false,
};

/// Python's `virtualenv:` options.
pub static VIRTUALENV: Obj = Obj {
    groups: &[&[key("system_site_packages", Ty::Bool)]],
    prefix: None,
    toggle: false,
};

macro_rules! obj {
    ($prefix:expr, $toggle:expr, [$($k:expr),* $(,)?]) => {
        Obj { groups: &[&[$($k),*]], prefix: $prefix, toggle: $toggle }
    };
}

/// Travis add-ons: what Slipway does for each is in `docs/pipeline-reference.md`, *Addons*.
pub static ADDONS: Obj = obj!(
    None,
    false,
    [
        key("apt", Ty::Object(&APT)).summary("APT sources and packages installed before before_install"),
        key("apt_packages", STRS).summary("APT packages (the short form of `apt: packages:`)"),
        key("artifacts", Ty::Object(&ARTIFACTS))
            .summary("Files uploaded to S3 after the job"),
        key("browserstack", Ty::Object(&BROWSERSTACK)).cannot(
            "the BrowserStack Local tunnel binary is a third-party download Slipway does not ship",
            "start `BrowserStackLocal --key \"$BROWSERSTACK_ACCESS_KEY\" --daemon start` in before_script",
        ),
        key("chrome", Ty::Str).summary("Chromium from the image's APT sources"),
        key("code_climate", Ty::Object(&CODE_CLIMATE)).cannot(
            "the Code Climate reporter is a third-party download Slipway does not ship",
            "set CC_TEST_REPORTER_ID in env and run the `cc-test-reporter` steps in before_script and after_script",
        ),
        key("coverity_scan", Ty::Object(&COVERITY)).cannot(
            "Coverity's build tool is a licensed download fetched with the project's token, which Slipway does not ship",
            "run Coverity's `cov-build` and upload from a script deploy or after_success",
        ),
        key("homebrew", Ty::Object(&HOMEBREW)).cannot(
            "Homebrew is the macOS package manager and jobs run in Linux containers",
            "install the packages with `addons: apt:` or use an image that has them",
        ),
        key("hostname", Ty::Str).summary("A name for the job's host, resolving to 127.0.0.1"),
        key("hosts", STRS).summary("Names added to /etc/hosts for 127.0.0.1"),
        key("jwt", Ty::Secures).deprecated("Discontinued as of April 17, 2018"),
        key("sauce_connect", Ty::Object(&SAUCE)).cannot(
            "the Sauce Connect tunnel binary is a third-party download Slipway does not ship",
            "start `sc -u \"$SAUCE_USERNAME\" -k \"$SAUCE_ACCESS_KEY\"` in before_script from an image that has it",
        ),
        key("pkg", Ty::Object(&PKG)).cannot(
            "pkg is FreeBSD's package manager and jobs run in Linux containers",
            "install the packages with `addons: apt:` in a Linux job",
        ),
        key("srcclr", Ty::Any).cannot(
            "the SourceClear agent is a third-party download Slipway does not ship",
            "run the agent from script with SRCCLR_API_TOKEN in env",
        ),
        key("snaps", Ty::Any).cannot(
            "snapd needs systemd and a privileged host, which a job container has not",
            "install the software with `addons: apt:` or use an image that has it",
        ),
        key("sonarcloud", Ty::Object(&SONARCLOUD)).cannot(
            "the SonarScanner is a third-party download Slipway does not ship",
            "run `sonar-scanner` in script from an image that has it, with SONAR_TOKEN in env",
        ),
        key("ssh_known_hosts", STRS).summary("Host keys scanned into ~/.ssh/known_hosts"),
        key("firefox", Ty::Str).summary("Firefox from the image's APT sources"),
        key("mariadb", Ty::Str).summary("The MariaDB service's version"),
        key("postgresql", Ty::Str)
            .aliases(&["postgres"])
            .summary("The PostgreSQL service's version"),
        key("rethinkdb", Ty::Str).cannot(
            "RethinkDB is not one of the services Slipway starts",
            "start it in before_script from an image that has it",
        ),
        key("sbom", Ty::Any).cannot(
            "Travis's SBOM generator is part of Travis's hosted service",
            "run an SBOM tool such as `syft` in after_success",
        ),
    ]
);

/// `addons.apt`.
pub static APT: Obj = obj!(
    Some("packages"),
    true,
    [
        key("packages", STRS).aliases(&["package"]),
        key("sources", Ty::Any).aliases(&["source"]),
        key("dist", Ty::Str),
        key("update", Ty::Bool),
        key("config", Ty::Map),
    ]
);
/// `addons.artifacts`.
pub static ARTIFACTS: Obj = obj!(
    None,
    true,
    [
        key("enabled", Ty::Bool),
        key("bucket", Ty::Str),
        key("endpoint", Ty::Str),
        key("key", Ty::SecureLax).aliases(&[
            "aws_access_key_id",
            "aws_access_key",
            "access_key_id",
            "access_key"
        ]),
        key("secret", Ty::Secure).aliases(&[
            "aws_secret_access_key",
            "aws_secret_key",
            "secret_access_key",
            "secret_key"
        ]),
        key("region", Ty::Str).aliases(&["s3_region"]),
        key("paths", STRS),
        key("branch", Ty::Str),
        key("log_format", Ty::Str),
        key("target_paths", STRS),
        key("debug", Ty::Bool),
        key("concurrency", Ty::Num),
        key("max_size", Ty::Num),
        key("permissions", Ty::Str),
        key("working_dir", Ty::Str),
        key("cache_control", Ty::Str),
    ]
);
/// `addons.browserstack`.
pub static BROWSERSTACK: Obj = obj!(
    None,
    true,
    [
        key("username", Ty::SecureLax),
        key("access_key", Ty::Secure),
        key("forcelocal", Ty::Bool),
        key("only", Ty::Str),
        key("app_path", Ty::Str),
        key("proxyHost", Ty::Str),
        key("proxyPort", Ty::Str),
        key("proxyUser", Ty::Str),
        key("proxyPass", Ty::Secure),
    ]
);
/// `addons.code_climate`.
pub static CODE_CLIMATE: Obj = obj!(Some("repo_token"), true, [key("repo_token", Ty::Secure)]);
/// `addons.coverity_scan`.
pub static COVERITY: Obj = obj!(
    None,
    true,
    [
        key("project", Ty::Any),
        key("build_script_url", Ty::Str),
        key("branch_pattern", Ty::Str),
        key("notification_email", Ty::SecureLax),
        key("build_command", Ty::Str),
        key("build_command_prepend", Ty::Str),
    ]
);
/// `addons.homebrew`.
pub static HOMEBREW: Obj = obj!(
    Some("packages"),
    true,
    [
        key("update", Ty::Bool),
        key("packages", STRS),
        key("casks", STRS),
        key("taps", STRS),
        key("brewfile", Ty::Any),
    ]
);
/// `addons.sauce_connect`.
pub static SAUCE: Obj = obj!(
    None,
    true,
    [
        key("enabled", Ty::Bool),
        key("username", Ty::SecureLax),
        key("access_key", Ty::Secure),
        key("direct_domains", Ty::Str),
        key("tunnel_domains", Ty::Str),
        key("no_ssl_bump_domains", Ty::Str),
    ]
);
/// `addons.pkg`.
pub static PKG: Obj = obj!(
    Some("packages"),
    true,
    [
        key("packages", STRS).aliases(&["package"]),
        key("branch", Ty::Str),
    ]
);
/// `addons.sonarcloud`.
pub static SONARCLOUD: Obj = obj!(
    None,
    true,
    [
        key("enabled", Ty::Bool),
        key("organization", Ty::Str),
        key("token", Ty::Secure),
        key("github_token", Ty::Secure).deprecated("setting a GitHub token is deprecated"),
        key("branches", STRS).deprecated("setting a branch is deprecated"),
    ]
);

/// Keys every notification target understands.
macro_rules! notify {
    ($prefix:expr, [$($k:expr),* $(,)?]) => {
        obj!($prefix, true, [
            $($k,)*
            key("template", Ty::Template),
            key("if", Ty::Condition),
            key("on_success", Ty::Enum(&FREQUENCY)),
            key("on_failure", Ty::Enum(&FREQUENCY)),
            key("enabled", Ty::Bool),
            key("disabled", Ty::Bool),
        ])
    };
}

/// `notifications:`.
pub static NOTIFICATIONS: Obj = obj!(
    Some("email"),
    false,
    [
        key("campfire", Ty::OneOrMany(&CAMPFIRE_TY)).not_yet(),
        key("email", Ty::OneOrMany(&EMAIL_TY))
            .aliases(&["emails"])
            .summary("Email to the commit's author and committer, or to `recipients`"),
        key("flowdock", Ty::OneOrMany(&FLOWDOCK_TY)).not_yet(),
        key("hipchat", Ty::OneOrMany(&HIPCHAT_TY)).not_yet(),
        key("irc", Ty::OneOrMany(&IRC_TY)).summary("Messages to IRC channels"),
        key("pushover", Ty::OneOrMany(&PUSHOVER_TY)).not_yet(),
        key("slack", Ty::OneOrMany(&SLACK_TY)).summary("Messages to Slack rooms"),
        key("webhooks", Ty::OneOrMany(&WEBHOOKS_TY))
            .aliases(&["webhook"])
            .summary("Travis's JSON build payload POSTed to URLs"),
        key("on_success", Ty::Enum(&FREQUENCY)),
        key("on_failure", Ty::Enum(&FREQUENCY)),
    ]
);
static CAMPFIRE_TY: Ty = Ty::Object(&CAMPFIRE);
static EMAIL_TY: Ty = Ty::Object(&EMAIL);
static FLOWDOCK_TY: Ty = Ty::Object(&FLOWDOCK);
static HIPCHAT_TY: Ty = Ty::Object(&HIPCHAT);
static IRC_TY: Ty = Ty::Object(&IRC);
static PUSHOVER_TY: Ty = Ty::Object(&PUSHOVER);
static SLACK_TY: Ty = Ty::Object(&SLACK);
static WEBHOOKS_TY: Ty = Ty::Object(&WEBHOOKS);
/// `notifications.campfire`.
pub static CAMPFIRE: Obj = notify!(Some("rooms"), [key("rooms", Ty::Secures)]);
/// `notifications.email`.
pub static EMAIL: Obj = obj!(
    Some("recipients"),
    true,
    [
        key("recipients", Ty::Targets(Target::Email)),
        key("if", Ty::Condition),
        key("on_success", Ty::Enum(&FREQUENCY)),
        key("on_failure", Ty::Enum(&FREQUENCY)),
        key("enabled", Ty::Bool),
        key("disabled", Ty::Bool),
    ]
);
/// `notifications.flowdock`.
pub static FLOWDOCK: Obj = notify!(Some("api_token"), [key("api_token", Ty::Secure)]);
/// `notifications.hipchat`.
pub static HIPCHAT: Obj = notify!(
    Some("rooms"),
    [
        key("rooms", Ty::Secures),
        key("format", Ty::Str),
        key("notify", Ty::Bool),
        key("on_pull_requests", Ty::Bool),
    ]
);
/// `notifications.irc`.
pub static IRC: Obj = notify!(
    Some("channels"),
    [
        key("channels", Ty::Targets(Target::IrcChannel)).aliases(&["channel"]),
        key("channel_key", Ty::Secure),
        key("password", Ty::Secure),
        key("nickserv_password", Ty::Secure),
        key("nick", Ty::SecureLax),
        key("use_notice", Ty::Bool),
        key("skip_join", Ty::Bool),
    ]
);
/// `notifications.pushover`.
pub static PUSHOVER: Obj = notify!(
    None,
    [key("api_key", Ty::Secures), key("users", Ty::Secures)]
);
/// `notifications.slack`.
pub static SLACK: Obj = notify!(
    Some("rooms"),
    [
        key("rooms", Ty::Targets(Target::SlackRoom)),
        key("on_pull_requests", Ty::Bool),
    ]
);
/// `notifications.webhooks`.
pub static WEBHOOKS: Obj = notify!(
    Some("urls"),
    [
        key("urls", Ty::Targets(Target::WebhookUrl)),
        key("on_start", Ty::Enum(&FREQUENCY)),
        key("on_cancel", Ty::Enum(&FREQUENCY)),
        key("on_error", Ty::Enum(&FREQUENCY)),
    ]
);

/// `deploy.on:` — when a deploy runs.
pub static DEPLOY_ON: Obj = Obj {
    groups: &[
        &[
            key("branch", STRS),
            key("repo", Ty::Str),
            key("condition", STRS),
            key("all_branches", Ty::Bool),
            key("tags", Ty::Bool),
            key("os", Ty::Str),
        ],
        LANGUAGE_JOB,
    ],
    prefix: Some("branch"),
    toggle: false,
};

/// Options every deploy provider accepts.
pub static DEPLOY_COMMON: &[Key] = &[
    key("provider", Ty::Str).summary("Which provider deploys"),
    key("on", Ty::Object(&DEPLOY_ON))
        .aliases(&["true"])
        .summary("When to deploy (branch, tags, condition)"),
    key("run", STRS),
    key("allow_failure", Ty::Bool),
    key("cleanup", Ty::Bool)
        .summary("Reset the build dir to how the job started before deploying (default: true; with edge: false)"),
    key("skip_cleanup", Ty::Bool).deprecated("not supported in dpl v2, use cleanup"),
    key("edge", Ty::Any)
        .summary("dpl v2 semantics: the build dir is not reset before deploying unless cleanup: true"),
];

/// Every deploy provider: Travis's `dpl` providers (those marked [`Support::Yes`] Slipway runs
/// itself) plus Slipway's own `ecs`, `gke` and `kubernetes`. The options of the providers
/// Slipway runs mirror what `slipway-providers` reads; a test there keeps the two equal.
pub static PROVIDERS: &[Provider] = &[
    Provider {
        name: "anynines",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("username", Ty::SecureLax),
            opt("password", Ty::Secure),
            opt("organization", Ty::Str),
            opt("space", Ty::Str),
            opt("app_name", Ty::Str),
            opt("buildpack", Ty::Str),
            opt("manifest", Ty::Str),
            opt("logout", Ty::Bool),
        ],
    },
    Provider {
        name: "azure_web_apps",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("site", Ty::Str),
            opt("slot", Ty::Str),
            opt("username", Ty::SecureLax),
            opt("password", Ty::Secure),
            opt("verbose", Ty::Bool),
        ],
    },
    Provider {
        name: "bintray",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("user", Ty::SecureLax),
            opt("key", Ty::Secure),
            opt("file", Ty::Str),
            opt("passphrase", Ty::Secure),
            opt("url", Ty::Str),
        ],
    },
    Provider {
        name: "bluemixcloudfoundry",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("username", Ty::SecureLax),
            opt("password", Ty::Secure),
            opt("organization", Ty::Str),
            opt("api", Ty::Str),
            opt("space", Ty::Str),
            opt("region", Ty::Str),
            opt("buildpack", Ty::Str),
            opt("manifest", Ty::Str),
            opt("skip_ssl_validation", Ty::Bool),
            opt("app_name", Ty::Str),
            opt("logout", Ty::Bool),
        ],
    },
    Provider {
        name: "boxfuse",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("user", Ty::SecureLax),
            opt("secret", Ty::Secure),
            opt("config_file", Ty::Str).aliases(&["configfile"]),
            opt("payload", Ty::Str),
            opt("app", Ty::Str),
            opt("version", Ty::Str),
            opt("env", Ty::Str),
            opt("extra_args", Ty::Str),
        ],
    },
    Provider {
        name: "cargo",
        required: &[],
        support: Support::NotYet,
        options: &[opt("token", Ty::Secure), opt("allow_dirty", Ty::Bool)],
    },
    Provider {
        name: "chef_supermarket",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("user_id", Ty::Str),
            opt("client_key", Ty::Str),
            opt("name", Ty::Str).aliases(&["cookbook_name"]),
            opt("category", Ty::Str).aliases(&["cookbook_category"]),
            opt("dir", Ty::Str),
        ],
    },
    Provider {
        name: "cloud66",
        required: &[],
        support: Support::NotYet,
        options: &[opt("redeployment_hook", Ty::Secure)],
    },
    Provider {
        name: "cloudfiles",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("username", Ty::SecureLax),
            opt("api_key", Ty::Secure),
            opt("region", Ty::Str),
            opt("container", Ty::Str),
            opt("glob", Ty::Str),
            opt("dot_match", Ty::Bool),
        ],
    },
    Provider {
        name: "cloudformation",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("access_key_id", Ty::SecureLax),
            opt("secret_access_key", Ty::Secure),
            opt("region", Ty::Str),
            opt("template", Ty::Str),
            opt("stack_name", Ty::Str),
            opt("stack_name_prefix", Ty::Str),
            opt("promote", Ty::Bool),
            opt("role_arn", Ty::Str),
            opt("sts_assume_role", Ty::Str),
            opt("capabilities", Ty::Strs),
            opt("wait", Ty::Bool),
            opt("wait_timeout", Ty::Num),
            opt("create_timeout", Ty::Num),
            opt("parameters", Ty::Strs),
            opt("output_file", Ty::Str),
        ],
    },
    Provider {
        name: "cloudfoundry",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("username", Ty::SecureLax),
            opt("password", Ty::Secure),
            opt("organization", Ty::Str),
            opt("api", Ty::Str),
            opt("space", Ty::Str),
            opt("buildpack", Ty::Str),
            opt("manifest", Ty::Str),
            opt("skip_ssl_validation", Ty::Bool),
            opt("app_name", Ty::Str),
            opt("logout", Ty::Bool),
            opt("v3", Ty::Bool),
        ],
    },
    Provider {
        name: "codedeploy",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("access_key_id", Ty::SecureLax),
            opt("secret_access_key", Ty::Secure),
            opt("application", Ty::Str),
            opt("deployment_group", Ty::Str),
            opt("revision_type", Ty::Str),
            opt("commit_id", Ty::Str),
            opt("description", Ty::Str),
            opt("repository", Ty::Str),
            opt("region", Ty::Str),
            opt("file_exists_behavior", Ty::Str),
            opt("wait_until_deployed", Ty::Bool),
            opt("bucket", Ty::Str),
            opt("key", Ty::Str),
            opt("bundle_type", Ty::Str),
            opt("endpoint", Ty::Str),
        ],
    },
    Provider {
        name: "convox",
        required: &["app", "rack", "password"],
        support: Support::NotYet,
        options: &[
            opt("host", Ty::Str),
            opt("app", Ty::Str),
            opt("rack", Ty::Str),
            opt("password", Ty::Secure),
            opt("install_url", Ty::Str),
            opt("update_cli", Ty::Bool),
            opt("create", Ty::Bool),
            opt("promote", Ty::Bool),
            opt("env", Ty::Strs),
            opt("env_file", Ty::Str),
            opt("description", Ty::Str),
            opt("generation", Ty::Num),
        ],
    },
    Provider {
        name: "datica",
        required: &[],
        support: Support::NotYet,
        options: &[opt("target", Ty::Str), opt("path", Ty::Str)],
    },
    Provider {
        name: "ecr",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("access_key_id", Ty::SecureLax),
            opt("secret_access_key", Ty::Secure),
            opt("account_id", Ty::Str),
            opt("source", Ty::Str),
            opt("target", Ty::Str),
            opt("region", Ty::Str),
        ],
    },
    Provider {
        name: "elasticbeanstalk",
        required: &["bucket"],
        support: Support::Yes,
        options: &[
            AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY,
            opt("region", Ty::Str),
            opt("endpoint", Ty::Str),
            opt("app", Ty::StrOrMap),
            opt("env", Ty::StrOrMap),
            opt("bucket", Ty::Str).aliases(&["bucket_name"]),
            opt("bucket_path", Ty::Str),
            opt("zip_file", Ty::Str),
            opt("label", Ty::Str),
            opt("description", Ty::Str),
            opt("only_create_app_version", Ty::Bool),
            opt("wait_until_deployed", Ty::Bool),
            opt("wait_until_deployed_timeout", Ty::Num),
            opt("solution_stack", Ty::Str),
            opt("pin_images", Ty::Bool),
            opt("debug", Ty::Bool),
        ],
    },
    Provider {
        name: "engineyard",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("email", Ty::SecureLax),
            opt("password", Ty::Secure),
            opt("api_key", Ty::Secure),
            opt("account", Ty::SecureLax),
            opt("app", Ty::StrOrMap),
            opt("env", Ty::StrOrMap).aliases(&["environment"]),
            opt("migrate", Ty::Str),
        ],
    },
    Provider {
        name: "firebase",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("project", Ty::Str),
            opt("token", Ty::Secure),
            opt("message", Ty::Str),
            opt("only", Ty::Str),
            opt("force", Ty::Bool),
        ],
    },
    Provider {
        name: "flynn",
        required: &[],
        support: Support::NotYet,
        options: &[opt("git", Ty::SecureLax)],
    },
    Provider {
        name: "gae",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("project", Ty::Str),
            opt("keyfile", Ty::Str),
            opt("config", Ty::Strs),
            opt("version", Ty::Str),
            opt("verbosity", Ty::Str),
            opt("promote", Ty::Bool),
            opt("no_promote", Ty::Bool)
                .aliases(&[])
                .deprecated("use promote: false"),
            opt("stop_previous_version", Ty::Bool),
            opt("no_stop_previous_version", Ty::Bool)
                .aliases(&[])
                .deprecated("use stop_previous_version: false"),
            opt("install_sdk", Ty::Bool),
        ],
    },
    Provider {
        name: "gcs",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("key_file", Ty::Str),
            opt("access_key_id", Ty::SecureLax),
            opt("secret_access_key", Ty::Secure),
            opt("bucket", Ty::Str),
            opt("upload_dir", Ty::Str),
            opt("local_dir", Ty::Str),
            opt("dot_match", Ty::Bool),
            opt("acl", Ty::Str),
            opt("cache_control", Ty::Str),
            opt("detect_encoding", Ty::Bool),
        ],
    },
    Provider {
        name: "git_push",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("token", Ty::Secure).aliases(&["github_token"]),
            opt("deploy_key", Ty::Str),
            opt("repo", Ty::Str),
            opt("branch", Ty::Str),
            opt("base_branch", Ty::Str),
            opt("commit_message", Ty::Str),
            opt("allow_empty_commit", Ty::Bool),
            opt("allow_same_branch", Ty::Bool),
            opt("force", Ty::Bool),
            opt("local_dir", Ty::Str),
            opt("name", Ty::Str),
            opt("email", Ty::Str),
            opt("host", Ty::Str),
            opt("enterprise", Ty::Bool),
        ],
    },
    Provider {
        name: "gleis",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("app", Ty::Str),
            opt("username", Ty::Str),
            opt("password", Ty::Secure),
            opt("key_name", Ty::Str),
            opt("verbose", Ty::Bool),
        ],
    },
    Provider {
        name: "hackage",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("username", Ty::SecureLax),
            opt("password", Ty::Secure),
            opt("publish", Ty::Bool),
        ],
    },
    Provider {
        name: "hephy",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("controller", Ty::Str),
            opt("username", Ty::SecureLax),
            opt("password", Ty::Secure),
            opt("app", Ty::Str),
            opt("cli_version", Ty::Str),
            opt("verbose", Ty::Bool),
        ],
    },
    Provider {
        name: "heroku",
        required: &[],
        support: Support::Yes,
        options: &[
            opt("strategy", Ty::Str),
            opt("api_key", Ty::Any),
            opt("username", Ty::Secure).aliases(&["user"]),
            opt("password", Ty::Secure),
            opt("app", Ty::StrOrMap),
            opt("git", Ty::Str),
        ],
    },
    Provider {
        name: "lambda",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("access_key_id", Ty::SecureLax),
            opt("secret_access_key", Ty::Secure),
            opt("region", Ty::Str),
            opt("function_name", Ty::Str),
            opt("role", Ty::Str),
            opt("handler_name", Ty::Str),
            opt("module_name", Ty::Str),
            opt("zip", Ty::Str),
            opt("description", Ty::Str),
            opt("timeout", Ty::Str),
            opt("memory_size", Ty::Str),
            opt("runtime", Ty::Str),
            opt("security_group_ids", Ty::Strs),
            opt("environment", Ty::Secures).aliases(&["environment_variables"]),
            opt("subnet_ids", Ty::Strs),
            opt("dead_letter_arn", Ty::Str),
            opt("kms_key_arn", Ty::Str),
            opt("tracing_mode", Ty::Str),
            opt("layers", Ty::Strs),
            opt("publish", Ty::Bool),
            opt("function_tags", Ty::Secures),
            opt("dot_match", Ty::Bool),
        ],
    },
    Provider {
        name: "launchpad",
        required: &["slug", "oauth_token", "oauth_token_secret"],
        support: Support::NotYet,
        options: &[
            opt("slug", Ty::Str),
            opt("oauth_token", Ty::Secure),
            opt("oauth_token_secret", Ty::Secure),
        ],
    },
    Provider {
        name: "netlify",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("site", Ty::Str),
            opt("auth", Ty::Secure),
            opt("dir", Ty::Str),
            opt("functions", Ty::Str),
            opt("message", Ty::Str),
            opt("prod", Ty::Bool),
        ],
    },
    Provider {
        name: "npm",
        required: &[],
        support: Support::Yes,
        options: &[
            opt("email", Ty::SecureLax),
            opt("api_token", Ty::Secure).aliases(&["api_key"]),
            opt("access", Ty::Str),
            opt("registry", Ty::Str),
            opt("src", Ty::Str),
            opt("tag", Ty::Str),
            opt("auth_method", Ty::Str),
        ],
    },
    Provider {
        name: "nuget",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("api_key", Ty::SecureLax),
            opt("registry", Ty::Str),
            opt("src", Ty::Str),
            opt("no_symbols", Ty::Bool),
            opt("skip_duplicate", Ty::Bool),
        ],
    },
    Provider {
        name: "openshift",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("server", Ty::Str),
            opt("token", Ty::Secure),
            opt("project", Ty::Str),
            opt("app", Ty::Str),
        ],
    },
    Provider {
        name: "opsworks",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("access_key_id", Ty::SecureLax),
            opt("secret_access_key", Ty::Secure),
            opt("region", Ty::Str),
            opt("app_id", Ty::Str),
            opt("instance_ids", Ty::Strs),
            opt("layer_ids", Ty::Strs),
            opt("migrate", Ty::Bool),
            opt("wait_until_deployed", Ty::Bool),
            opt("custom_json", Ty::Str),
            opt("update_on_success", Ty::Bool).aliases(&["update_app_on_success"]),
        ],
    },
    Provider {
        name: "packagecloud",
        required: &["username", "repository"],
        support: Support::Yes,
        options: &[
            opt("username", Ty::SecureLax),
            opt("token", Ty::Secure),
            opt("repository", Ty::Str),
            opt("local_dir", Ty::Str),
            opt("dist", Ty::Str),
            opt("package_glob", Ty::Strs),
            opt("force", Ty::Bool),
            opt("connect_timeout", Ty::Num),
            opt("read_timeout", Ty::Num),
            opt("write_timeout", Ty::Num),
        ],
    },
    Provider {
        name: "pages",
        required: &[],
        support: Support::Yes,
        options: &[
            opt("strategy", Ty::Str),
            opt("token", Ty::Secure).aliases(&["github_token"]),
            opt("deploy_key", Ty::Str),
            opt("repo", Ty::Str),
            opt("target_branch", Ty::Str),
            opt("local_dir", Ty::Str),
            opt("fqdn", Ty::Str),
            opt("project_name", Ty::Str),
            opt("email", Ty::Str),
            opt("name", Ty::Str),
            opt("url", Ty::Str).aliases(&["github_url"]),
            opt("keep_history", Ty::Bool),
            opt("verbose", Ty::Bool),
            opt("allow_empty_commit", Ty::Bool),
            opt("commit_message", Ty::Str),
            opt("committer_from_gh", Ty::Bool),
            opt("deployment_file", Ty::Bool),
        ],
    },
    Provider {
        name: "puppetforge",
        required: &["username", "password"],
        support: Support::NotYet,
        options: &[
            opt("username", Ty::SecureLax).aliases(&["user"]),
            opt("password", Ty::Secure),
            opt("url", Ty::Str),
        ],
    },
    Provider {
        name: "pypi",
        required: &[],
        support: Support::Yes,
        options: &[
            opt("username", Ty::SecureLax).aliases(&["user"]),
            opt("password", Ty::Secure),
            opt("server", Ty::Str),
            opt("distributions", Ty::Str),
            opt("docs_dir", Ty::Str),
            opt("skip_existing", Ty::Bool),
            opt("upload_docs", Ty::Bool),
            opt("skip_upload_docs", Ty::Bool)
                .aliases(&[])
                .deprecated("use upload_docs: false"),
            opt("twine_check", Ty::Bool),
            opt("remove_build_dir", Ty::Bool),
            opt("setuptools_version", Ty::Str),
            opt("twine_version", Ty::Str),
            opt("wheel_version", Ty::Str),
        ],
    },
    Provider {
        name: "releases",
        required: &[],
        support: Support::Yes,
        options: &[
            opt("username", Ty::SecureLax).aliases(&["user"]),
            opt("password", Ty::Secure),
            opt("token", Ty::Secure).aliases(&["api_key"]),
            opt("repo", Ty::Str),
            opt("file", Ty::Strs),
            opt("file_glob", Ty::Bool),
            opt("overwrite", Ty::Bool),
            opt("draft", Ty::Bool),
            opt("name", Ty::Str),
            opt("prerelease", Ty::Bool),
            opt("release_number", Ty::Str),
            opt("release_notes", Ty::Str).aliases(&["body"]),
            opt("release_notes_file", Ty::Str),
            opt("tag_name", Ty::Str),
            opt("target_commitish", Ty::Str),
        ],
    },
    Provider {
        name: "rubygems",
        required: &[],
        support: Support::Yes,
        options: &[
            opt("api_key", Ty::Any),
            opt("username", Ty::Any).aliases(&["user"]),
            opt("password", Ty::Any),
            opt("gem", Ty::StrOrMap),
            opt("gemspec", Ty::Str),
            opt("gemspec_glob", Ty::Str),
            opt("host", Ty::Str),
        ],
    },
    Provider {
        name: "s3",
        required: &["bucket"],
        support: Support::Yes,
        options: &[
            AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY,
            opt("region", Ty::Str),
            opt("endpoint", Ty::Str),
            opt("bucket", Ty::Str),
            opt("local_dir", Ty::Str),
            opt("upload_dir", Ty::Str),
            opt("glob", Ty::Str),
            opt("dot_match", Ty::Bool),
            opt("acl", Ty::Str),
            opt("detect_encoding", Ty::Bool),
            opt("cache_control", Ty::Strs),
            opt("expires", Ty::Str),
            opt("storage_class", Ty::Str),
            opt("server_side_encryption", Ty::Bool),
            opt("index_document_suffix", Ty::Str),
            opt("default_text_charset", Ty::Str),
            opt("force_path_style", Ty::Bool),
            opt("max_threads", Ty::Num),
            opt("overwrite", Ty::Bool),
            opt("verbose", Ty::Bool),
        ],
    },
    Provider {
        name: "scalingo",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("api_token", Ty::Secure).aliases(&["api_key"]),
            opt("username", Ty::SecureLax).aliases(&["user"]),
            opt("password", Ty::Secure),
            opt("remote", Ty::Str),
            opt("branch", Ty::Str),
            opt("app", Ty::Str),
            opt("region", Ty::Str),
            opt("timeout", Ty::Num),
        ],
    },
    Provider {
        name: "script",
        required: &["script"],
        support: Support::Yes,
        options: &[opt("script", Ty::Str)],
    },
    Provider {
        name: "snap",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("snap", Ty::Str),
            opt("channel", Ty::Str),
            opt("token", Ty::Secure),
        ],
    },
    Provider {
        name: "surge",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("login", Ty::SecureLax),
            opt("token", Ty::Secure),
            opt("project", Ty::Str),
            opt("domain", Ty::Str),
        ],
    },
    Provider {
        name: "testfairy",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("api_key", Ty::Secure),
            opt("app_file", Ty::Str),
            opt("symbols_file", Ty::Str),
            opt("testers_groups", Ty::Str),
            opt("notify", Ty::Bool),
            opt("auto_update", Ty::Bool),
            opt("advanced_options", Ty::Str),
        ],
    },
    Provider {
        name: "transifex",
        required: &[],
        support: Support::NotYet,
        options: &[
            opt("api_token", Ty::Secure),
            opt("username", Ty::SecureLax),
            opt("password", Ty::Secure),
            opt("hostname", Ty::Str),
            opt("cli_version", Ty::Str),
        ],
    },
    Provider {
        name: "ecs",
        required: &["cluster", "service"],
        support: Support::Yes,
        options: &[
            AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY,
            opt("region", Ty::Str),
            opt("endpoint", Ty::Str),
            opt("cluster", Ty::Str),
            opt("service", Ty::Str),
            opt("task_definition", Ty::Str),
            opt("dockerrun", Ty::Str),
            opt("family", Ty::Str),
            opt("container", Ty::Str),
            opt("image", Ty::Str),
            opt("images", Ty::Map),
            opt("pin_images", Ty::Bool),
            opt("wait_until_deployed", Ty::Bool),
            opt("timeout", Ty::Num),
            opt("rollback", Ty::Bool),
        ],
    },
    Provider {
        name: "gke",
        required: &["project", "cluster", "key_file"],
        support: Support::Yes,
        options: &[
            opt("project", Ty::Str),
            opt("zone", Ty::Str),
            opt("region", Ty::Str),
            opt("cluster", Ty::Str),
            opt("key_file", Ty::Str),
            opt("namespace", Ty::Str),
            opt("manifests", Ty::Strs),
            opt("images", Ty::Map),
            opt("secrets", Ty::Map),
            opt("wait_until_deployed", Ty::Bool),
            opt("timeout", Ty::Num),
        ],
    },
    Provider {
        name: "kubernetes",
        required: &[],
        support: Support::Yes,
        options: &[
            opt("kubeconfig", Ty::Str),
            opt("context", Ty::Str),
            opt("namespace", Ty::Str),
            opt("manifests", Ty::Strs),
            opt("images", Ty::Map),
            opt("secrets", Ty::Map),
            opt("wait_until_deployed", Ty::Bool),
            opt("timeout", Ty::Num),
        ],
    },
];

/// AWS credentials as Slipway's AWS providers read them (`access_key` is their short alias).
const AWS_ACCESS_KEY_ID: Key = opt("access_key_id", Ty::SecureLax).aliases(&["access_key"]);
/// The secret half of [`AWS_ACCESS_KEY_ID`] (`secret_key` is its short alias).
const AWS_SECRET_ACCESS_KEY: Key = opt("secret_access_key", Ty::Secure).aliases(&["secret_key"]);
