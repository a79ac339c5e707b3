//! `addons:` applied inside the job before `before_install`, as travis-build applied them.
//!
//! Each addon becomes a few shell steps in its own log fold, run after the job's environment is
//! exported and before the cache is restored. A step that fails errors the job with a message
//! naming the addon (`addons.apt: …`), like a failing `before_install` would. Add-ons a container
//! cannot honour are named in the log with why and what to do instead; database versions choose
//! the service image instead (see [`service_image`]). What each addon does is documented in
//! `docs/pipeline-reference.md`, *Addons*.

use std::collections::HashMap;

use slipway_pipelines::plan::{Addons, Apt, AptSource, Job};

use crate::script::sh_quote;

/// A named APT source (`ubuntu-toolchain-r-test`): the line to add and its signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedAptSource {
    /// The `deb …` line or `ppa:owner/name`.
    pub sourceline: String,
    /// Where the key is fetched from, if the source is signed by one apt does not have.
    pub key_url: Option<String>,
}

/// Travis's safelisted names that stand for a Launchpad PPA; the `ppa:` form names no host, and
/// `add-apt-repository` on an Ubuntu image resolves it. Names of other hosts' repositories are
/// the operator's to map (`[apt_sources]`), since they name a registry's host.
const PPA_ALIASES: &[(&str, &str)] = &[
    ("ubuntu-toolchain-r-test", "ppa:ubuntu-toolchain-r/test"),
    ("hvr-ghc", "ppa:hvr/ghc"),
    ("boost-latest", "ppa:boost-latest/ppa"),
    ("deadsnakes", "ppa:deadsnakes/ppa"),
    ("git-core", "ppa:git-core/ppa"),
    ("openjdk-r-java", "ppa:openjdk-r/ppa"),
];

/// Travis's `apt-get install` options (`travis_apt_get_options` on current apt).
const APT_GET_INSTALL: &str = "sudo -E apt-get -yq --no-install-suggests --no-install-recommends --allow-downgrades --allow-remove-essential --allow-change-held-packages install";

/// The shell helpers the addon steps use; written once when a job has any addon step.
const HELPERS: &str = r#"slipway_addon_run() {
  printf '$ %s\n' "$1"
  eval "$1"
}
slipway_addon_fail() {
  printf '\033[31;1m%s\033[0m\n' "$1"
  slipway_m "error $1"
  slipway_m 'result errored'
  exit 2
}
slipway_fetch() {
  if command -v curl >/dev/null 2>&1; then curl -fsSL "$1" -o "$2"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
  else printf '%s\n' 'neither curl nor wget is in the image'; return 1; fi
}
slipway_apt_updated=0
slipway_apt_update() {
  [ "$slipway_apt_updated" = 1 ] && return 0
  slipway_addon_run 'travis_retry sudo -E apt-get update -q' && slipway_apt_updated=1
}
"#;

/// The shell text that applies a job's add-ons, and the log notices about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddonSteps {
    /// Shell text run before `before_install` (empty when there is nothing to do).
    pub script: String,
    /// Lines for the start of the log (add-ons skipped, with why).
    pub notices: Vec<String>,
}

/// Compiles the job's add-ons. `named` maps source names the operator configured.
pub fn steps(job: &Job, named: &HashMap<String, NamedAptSource>) -> AddonSteps {
    let a = &job.addons;
    let mut out = AddonSteps::default();
    for n in &a.not_honoured {
        out.notices.push(format!(
            "addons.{} is skipped: {}. Instead, {}.",
            n.addon, n.why, n.instead
        ));
    }
    let mut s = String::new();
    if let Some(apt) = &a.apt {
        fold(
            &mut s,
            "apt",
            "Installing APT sources and packages (addons.apt)",
            |s| apt_steps(s, apt, &job.image.name, named),
        );
    }
    for (addon, channel) in [("chrome", &a.chrome), ("firefox", &a.firefox)] {
        if let Some(channel) = channel {
            fold(
                &mut s,
                addon,
                &format!("Installing {addon} (addons.{addon}: {channel})"),
                |s| browser_steps(s, addon, channel, &job.image.name),
            );
        }
    }
    let mut hosts = a.hosts.clone();
    hosts.extend(a.hostname.iter().cloned());
    if !hosts.is_empty() {
        fold(
            &mut s,
            "hosts",
            "Adding host names for 127.0.0.1 (addons.hosts)",
            |s| {
                // One line per name (printf repeats its format), so each is its own canonical name.
                let names: Vec<String> = hosts
                    .iter()
                    .flat_map(|h| [sh_quote(h), sh_quote(h)])
                    .collect();
                step(
                    s,
                    "hosts",
                    &format!(
                        "printf '127.0.0.1 %s\\n::1 %s\\n' {} | sudo tee -a /etc/hosts >/dev/null",
                        names.join(" ")
                    ),
                    "writing /etc/hosts failed",
                );
            },
        );
        if let Some(name) = &a.hostname {
            out.notices.push(format!(
                "addons.hostname: {name} resolves to 127.0.0.1 in the job; the container's own host name is set by the engine and stays as it is"
            ));
        }
    }
    if !a.ssh_known_hosts.is_empty() {
        fold(
            &mut s,
            "ssh_known_hosts",
            "Adding SSH known hosts (addons.ssh_known_hosts)",
            |s| known_hosts_steps(s, &a.ssh_known_hosts),
        );
    }
    if !s.is_empty() {
        out.script = format!("{HELPERS}{s}");
    }
    out
}

fn fold(s: &mut String, name: &str, title: &str, body: impl FnOnce(&mut String)) {
    s.push_str(&format!(
        "travis_fold start addons.{name}\nprintf '\\033[33;1m%s\\033[0m\\n' {}\n",
        sh_quote(title)
    ));
    body(s);
    s.push_str(&format!("travis_fold end addons.{name}\n"));
}

/// One step: the command is shown and run; when it fails the job errors naming the addon.
fn step(s: &mut String, addon: &str, command: &str, failure: &str) {
    s.push_str(&format!(
        "slipway_addon_run {} || slipway_addon_fail {}\n",
        sh_quote(command),
        sh_quote(&format!("addons.{addon}: {failure}"))
    ));
}

fn require(s: &mut String, addon: &str, tool: &str, image: &str, fix: &str) {
    s.push_str(&format!(
        "command -v {tool} >/dev/null 2>&1 || slipway_addon_fail {}\n",
        sh_quote(&format!(
            "addons.{addon}: the image {image} has no {tool}; {fix}"
        ))
    ));
}

fn apt_steps(s: &mut String, apt: &Apt, image: &str, named: &HashMap<String, NamedAptSource>) {
    require(
        s,
        "apt",
        "apt-get",
        image,
        "addons.apt needs a Debian or Ubuntu image (set `image:`), or install the packages another way in before_install",
    );
    s.push_str("export DEBIAN_FRONTEND=noninteractive\n");
    for (i, source) in apt.sources.iter().enumerate() {
        let (sourceline, key_url) = match source {
            AptSource::Line {
                sourceline,
                key_url,
            } => (sourceline.clone(), key_url.clone()),
            AptSource::Named(name) => {
                if let Some(n) = named.get(name) {
                    (n.sourceline.clone(), n.key_url.clone())
                } else if let Some((_, ppa)) = PPA_ALIASES.iter().find(|(n, _)| n == name) {
                    ((*ppa).to_owned(), None)
                } else {
                    s.push_str(&format!(
                        "slipway_addon_fail {}\n",
                        sh_quote(&format!(
                            "addons.apt: the source name {name} is not known here; write it as `- sourceline: \"deb …\"` with `key_url:`, or ask the operator to add it to [apt_sources]"
                        ))
                    ));
                    continue;
                }
            }
        };
        if let Some(url) = &key_url {
            // apt reads armoured (.asc) and binary (.gpg) keys from trusted.gpg.d; no gpg needed.
            let file = format!("/etc/apt/trusted.gpg.d/slipway-addons-{i}");
            step(
                s,
                "apt",
                &format!(
                    "slipway_fetch {} /tmp/slipway-apt-key && if grep -q 'BEGIN PGP' /tmp/slipway-apt-key; then sudo cp /tmp/slipway-apt-key {file}.asc; else sudo cp /tmp/slipway-apt-key {file}.gpg; fi",
                    sh_quote(url)
                ),
                &format!("fetching the key {url} failed"),
            );
        }
        if sourceline.starts_with("ppa:") {
            require(
                s,
                "apt",
                "add-apt-repository",
                image,
                &format!(
                    "{sourceline} is an Ubuntu PPA and needs add-apt-repository (software-properties-common on an Ubuntu image)"
                ),
            );
            step(
                s,
                "apt",
                &format!("sudo -E add-apt-repository -y {}", sh_quote(&sourceline)),
                &format!("adding {sourceline} failed"),
            );
        } else {
            step(
                s,
                "apt",
                &format!(
                    "printf '%s\\n' {} | sudo tee -a /etc/apt/sources.list.d/slipway-addons.list >/dev/null",
                    sh_quote(&sourceline)
                ),
                &format!("adding the source {sourceline} failed"),
            );
        }
    }
    if !apt.packages.is_empty() || !apt.sources.is_empty() || apt.update {
        s.push_str(
            "slipway_apt_update || slipway_addon_fail 'addons.apt: apt-get update failed'\n",
        );
    }
    if !apt.packages.is_empty() {
        let packages: Vec<String> = apt.packages.iter().map(|p| sh_quote(p)).collect();
        step(
            s,
            "apt",
            &format!("{APT_GET_INSTALL} {}", packages.join(" ")),
            &format!("installing {} failed", apt.packages.join(" ")),
        );
    }
}

/// Chrome and Firefox from the image's own APT sources: Chromium for `chrome` (with
/// `google-chrome` and `CHROME_BIN` pointing at it), Firefox ESR on Debian and Firefox on Ubuntu.
/// The vendors' own builds come from their download hosts, which a job may not reach; the log
/// says which version was installed when it is not the one asked for.
fn browser_steps(s: &mut String, addon: &str, channel: &str, image: &str) {
    require(
        s,
        addon,
        "apt-get",
        image,
        &format!("addons.{addon} installs from APT and needs a Debian or Ubuntu image"),
    );
    s.push_str("export DEBIAN_FRONTEND=noninteractive\n");
    s.push_str(&format!(
        "slipway_apt_update || slipway_addon_fail 'addons.{addon}: apt-get update failed'\n"
    ));
    let (candidates, binary) = if addon == "chrome" {
        ("chromium chromium-browser", "chromium")
    } else {
        ("firefox-esr firefox", "firefox")
    };
    step(
        s,
        addon,
        &format!(
            "slipway_pkg=; for p in {candidates}; do if apt-cache show \"$p\" >/dev/null 2>&1; then slipway_pkg=$p; break; fi; done; [ -n \"$slipway_pkg\" ] && {APT_GET_INSTALL} \"$slipway_pkg\""
        ),
        &format!("none of {candidates} is in the image's APT sources"),
    );
    if addon == "chrome" {
        s.push_str(
            "CHROME_BIN=$(command -v chromium || command -v chromium-browser); export CHROME_BIN\n\
             [ -n \"$CHROME_BIN\" ] && ! command -v google-chrome >/dev/null 2>&1 && sudo ln -sf \"$CHROME_BIN\" /usr/local/bin/google-chrome\n",
        );
    } else {
        s.push_str(
            "command -v firefox >/dev/null 2>&1 || { command -v firefox-esr >/dev/null 2>&1 && sudo ln -sf \"$(command -v firefox-esr)\" /usr/local/bin/firefox; }\n",
        );
    }
    s.push_str(&format!(
        "printf '%s\\n' \"addons.{addon}: asked for {c}; installed $slipway_pkg $(dpkg-query -W -f '${{Version}}' \"$slipway_pkg\" 2>/dev/null) from the image's APT sources ({binary})\"\n",
        c = channel.replace(['\'', '"', '$', '`', '\\'], "")
    ));
}

fn known_hosts_steps(s: &mut String, hosts: &[String]) {
    s.push_str(
        "command -v ssh-keyscan >/dev/null 2>&1 || slipway_addon_fail 'addons.ssh_known_hosts: the image has no ssh-keyscan; install openssh-client (addons.apt) or use an image that has it'\n",
    );
    step(
        s,
        "ssh_known_hosts",
        "mkdir -p \"$HOME/.ssh\" && chmod 700 \"$HOME/.ssh\"",
        "creating ~/.ssh failed",
    );
    for entry in hosts {
        let (host, port) = match entry.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, p),
            _ => (entry.as_str(), "22"),
        };
        step(
            s,
            "ssh_known_hosts",
            &format!(
                "ssh-keyscan -t rsa,ecdsa,ed25519 -p {port} -H {} 2>/dev/null >> \"$HOME/.ssh/known_hosts\" && grep -q . \"$HOME/.ssh/known_hosts\"",
                sh_quote(host)
            ),
            &format!("ssh-keyscan found no key for {entry}"),
        );
    }
}

/// The image of a service whose version an addon (`postgresql: "9.6"`, `mariadb: "10.5"`) asks
/// for: the official image at that version's tag.
pub fn service_image(addons: &Addons, service: &str, default_image: &str) -> Option<String> {
    let version = match service {
        "postgresql" => addons.postgresql.as_ref(),
        "mariadb" => addons.mariadb.as_ref(),
        _ => None,
    }?;
    let repository = default_image.split(':').next().unwrap_or(default_image);
    Some(format!("{repository}:{version}"))
}

/// The services the job starts: its `services:`, plus those a version addon asks for (Travis's
/// `postgresql:` addon started the server even when `services:` did not name it).
pub fn services(job: &Job) -> Vec<String> {
    let mut out = job.services.clone();
    for (asked, name) in [
        (&job.addons.postgresql, "postgresql"),
        (&job.addons.mariadb, "mariadb"),
    ] {
        if asked.is_some() && !out.iter().any(|s| s == name) {
            out.push(name.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_pipelines::plan::Context;

    fn job(yaml: &str) -> Job {
        let plan = slipway_pipelines::plan(".travis.yml", yaml.as_bytes(), &Context::default())
            .expect("plans");
        plan.stages[0].jobs[0].clone()
    }

    #[test]
    fn database_versions_choose_the_service_image_and_start_the_service() {
        let j = job(
            "addons:\n  postgresql: '9.6'\n  mariadb: '10.5'\nservices: [redis]\nscript: true\n",
        );
        assert_eq!(services(&j), ["redis", "postgresql", "mariadb"]);
        assert_eq!(
            service_image(&j.addons, "postgresql", "postgres:16").as_deref(),
            Some("postgres:9.6")
        );
        assert_eq!(
            service_image(&j.addons, "mariadb", "mariadb:11").as_deref(),
            Some("mariadb:10.5")
        );
        assert_eq!(service_image(&j.addons, "redis", "redis:7"), None);
        let plain = job("services: [postgresql]\nscript: true\n");
        assert_eq!(
            service_image(&plain.addons, "postgresql", "postgres:16"),
            None
        );
    }

    #[test]
    fn named_sources_resolve_from_the_operator_then_the_ppa_names_else_fail_naming_them() {
        let j = job(
            "addons:\n  apt:\n    sources: [ubuntu-toolchain-r-test, llvm-toolchain-xenial-8, mine]\n    packages: [gcc-9]\nscript: true\n",
        );
        let named = HashMap::from([(
            "mine".to_owned(),
            NamedAptSource {
                sourceline: "deb http://apt.internal.example/ stable main".into(),
                key_url: Some("http://apt.internal.example/key.asc".into()),
            },
        )]);
        let s = steps(&j, &named).script;
        assert!(
            s.contains("sudo -E add-apt-repository -y '\\''ppa:ubuntu-toolchain-r/test'\\''"),
            "{s}"
        );
        assert!(
            s.contains("the source name llvm-toolchain-xenial-8 is not known here"),
            "{s}"
        );
        assert!(
            s.contains("deb http://apt.internal.example/ stable main"),
            "{s}"
        );
        assert!(s.contains("http://apt.internal.example/key.asc"), "{s}");
        assert!(s.contains("travis_fold start addons.apt"), "{s}");
    }

    #[test]
    fn nothing_to_do_compiles_to_nothing_and_skipped_addons_say_why() {
        let j = job("addons:\n  snaps: [hugo]\nscript: true\n");
        let out = steps(&j, &HashMap::new());
        assert!(out.script.is_empty());
        assert_eq!(out.notices.len(), 1);
        assert!(out.notices[0].starts_with("addons.snaps is skipped: snapd needs systemd"));
    }
}
