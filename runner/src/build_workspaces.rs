//! `workspaces:`: files one job of a build hands to later jobs of the same build.
//!
//! A workspace is an archive in a kept volume beside the caches, named by the build's own
//! [`CacheScope`] owner (its branch, or its pull request and head repository), the build number
//! and the workspace name. It is written and read only within that owner's scope and that build,
//! never through the scope's read-only fallbacks, so only jobs of the same build ever see it and
//! nothing a pull request from a fork made reaches a trusted build.
//! The creating job archives its paths after `script` (and the cache save); a using job extracts
//! them into its build dir before `before_install`. A workspace that was never created errors
//! the job that uses it, naming it.

use sha2::{Digest, Sha256};
use slipway_pipelines::plan::Job;

use crate::executor::VolumeMount;
use crate::scope::CacheScope;
use crate::script::sh_quote;

/// Where workspace volumes are mounted inside the job.
pub const MOUNT_ROOT: &str = "/slipway/workspaces";

/// Label carrying the repository on workspace volumes.
pub const LABEL_REPO: &str = "dev.slipway.workspace.repo";
/// Label carrying the build number on workspace volumes.
pub const LABEL_BUILD: &str = "dev.slipway.workspace.build";

/// The volume holding workspace `name` of build `number` in `scope` (its own owner only).
pub fn volume_name(scope: &CacheScope, number: u64, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(scope.repo.as_bytes());
    h.update([0]);
    h.update(scope.own.key().as_bytes());
    h.update([0]);
    h.update(number.to_string().as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    format!("slipway-workspace-{}", hex::encode(&h.finalize()[..10]))
}

fn mount_dir(name: &str) -> String {
    format!("{MOUNT_ROOT}/{}", hex::encode(name.as_bytes()))
}

/// The volumes a job mounts: each used workspace read-only, the created one writable.
pub fn mounts(job: &Job, scope: &CacheScope, number: u64) -> Vec<VolumeMount> {
    let labels = |name: &str| {
        let mut l = vec![
            (LABEL_REPO.to_owned(), scope.repo.clone()),
            (LABEL_BUILD.to_owned(), number.to_string()),
            ("dev.slipway.workspace.name".to_owned(), name.to_owned()),
        ];
        l.extend(scope.own.labels());
        l
    };
    let mut out: Vec<VolumeMount> = Vec::new();
    if let Some(create) = &job.workspaces.create {
        out.push(VolumeMount {
            volume: volume_name(scope, number, &create.name),
            target: mount_dir(&create.name),
            read_only: false,
            labels: labels(&create.name),
        });
    }
    for name in &job.workspaces.uses {
        if out.iter().any(|m| m.target == mount_dir(name)) {
            continue;
        }
        out.push(VolumeMount {
            volume: volume_name(scope, number, name),
            target: mount_dir(name),
            read_only: true,
            labels: labels(name),
        });
    }
    out
}

/// Why a job cannot use workspace `name`.
pub fn missing(name: &str) -> String {
    format!(
        "workspaces: {name} was not created in this build (the job that creates it did not run or did not finish)"
    )
}

/// Shell text restoring the used workspaces into the build dir (run before `before_install`).
pub fn restore_script(job: &Job) -> String {
    let mut s = String::new();
    for name in &job.workspaces.uses {
        let archive = format!("{}/workspace.tar", mount_dir(name));
        let fail = missing(name);
        s.push_str(&format!(
            "if [ -f {a} ]; then printf 'workspaces: restoring %s\\n' {n}; tar -xf {a} -C / || slipway_workspace_fail {f}; else slipway_workspace_fail {f}; fi\n",
            a = sh_quote(&archive),
            n = sh_quote(name),
            f = sh_quote(&fail),
        ));
    }
    if s.is_empty() {
        return s;
    }
    format!(
        "slipway_workspace_fail() {{ printf '\\033[31;1m%s\\033[0m\\n' \"$1\"; slipway_m \"error $1\"; slipway_m 'result errored'; exit 2; }}\n{s}"
    )
}

/// Shell text archiving the created workspace (run after `script` and the cache save). A failure
/// is logged and errors the job, since later jobs depend on it.
pub fn save_script(job: &Job) -> String {
    let Some(create) = &job.workspaces.create else {
        return String::new();
    };
    let dir = mount_dir(&create.name);
    // Every path is archived from `/` (busybox's tar has no -P), so relative and absolute paths
    // come back where they were.
    let paths: Vec<String> = create
        .paths
        .iter()
        .map(|p| match p.strip_prefix('/') {
            Some(abs) => sh_quote(abs),
            None => format!("\"${{TRAVIS_BUILD_DIR#/}}\"/{}", sh_quote(p)),
        })
        .collect();
    let fail = format!("workspaces: saving {} failed", create.name);
    format!(
        "printf 'workspaces: saving %s (%s)\\n' {n} {shown}\n\
         if tar -cf {tmp} -C / {paths} && mv {tmp} {a}; then :; else printf '\\033[31;1m%s\\033[0m\\n' {f}; slipway_m \"error \"{f}; slipway_result=errored; fi\n",
        n = sh_quote(&create.name),
        shown = sh_quote(&create.paths.join(" ")),
        tmp = sh_quote(&format!("{dir}/workspace.tar.new")),
        a = sh_quote(&format!("{dir}/workspace.tar")),
        paths = if paths.is_empty() {
            "\"${TRAVIS_BUILD_DIR#/}\"".to_owned()
        } else {
            paths.join(" ")
        },
        f = sh_quote(&fail),
    )
}
