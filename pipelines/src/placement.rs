//! Whether a planned job can run here: its `os:` and `arch:` against what the operator has.
//!
//! Slipway runs Linux containers. A job for `osx`, `windows` or `freebsd` runs only when the
//! operator maps that OS to an image (`[os_images]`, `--os-image`); an `arch:` other than the
//! host's runs through the engine's platform selection when the host emulates it (binfmt), else
//! the job is *not run here*: planned, reported with the reason, and neither failing nor passing
//! the build. The decision is pure; the caller says what the host has ([`Hosting`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::Job;

/// What this machine offers jobs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Hosting {
    /// Images standing in for other operating systems (`osx` → `my/macos-like:1`).
    pub os_images: BTreeMap<String, String>,
    /// The host's architecture under Travis's name (`amd64`, `arm64`, …).
    pub host_arch: String,
    /// Other architectures the engine can run through emulation (binfmt), Travis's names.
    pub emulated_arches: Vec<String>,
}

/// Where a job goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The job runs here.
    Here {
        /// The image to use instead of the planned one (an operator's `[os_images]` entry).
        image: Option<String>,
        /// The engine platform to ask for (`linux/arm64`), when not the host's own.
        platform: Option<String>,
    },
    /// The job is not run here, for this reason.
    NotHere(String),
}

/// The Travis name of a Rust target architecture (`std::env::consts::ARCH`).
pub fn travis_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "x86" => "i386",
        other => other,
    }
}

/// The engine platform of a Travis architecture name.
fn platform_of(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "linux/amd64",
        "arm64" | "arm64-graviton2" => "linux/arm64",
        "ppc64le" => "linux/ppc64le",
        "s390x" => "linux/s390x",
        "i386" => "linux/386",
        _ => return None,
    })
}

/// Decides where `job` goes on a host offering `hosting`.
pub fn place(job: &Job, hosting: &Hosting) -> Placement {
    let os = job
        .matrix
        .get("os")
        .and_then(|v| v.as_str())
        .unwrap_or("linux");
    if os != "linux" {
        return match hosting.os_images.get(os) {
            Some(image) => Placement::Here {
                image: Some(image.clone()),
                platform: None,
            },
            None => Placement::NotHere(format!(
                "os: {os} needs a {} machine and this runner runs Linux containers; an operator can map {os} to an image with [os_images] in the configuration (or `slipway run --os-image {os}=IMAGE`)",
                os_name(os)
            )),
        };
    }
    let Some(arch) = job.matrix.get("arch").and_then(|v| v.as_str()) else {
        return Placement::Here {
            image: None,
            platform: None,
        };
    };
    let arch = if arch == "arm64-graviton2" {
        "arm64"
    } else {
        arch
    };
    if arch == hosting.host_arch {
        return Placement::Here {
            image: None,
            platform: None,
        };
    }
    // 64-bit x86 hosts run 32-bit x86 binaries natively.
    let native_32 = arch == "i386" && hosting.host_arch == "amd64";
    match platform_of(arch) {
        Some(platform) if native_32 || hosting.emulated_arches.iter().any(|a| a == arch) => {
            Placement::Here {
                image: None,
                platform: Some(platform.to_owned()),
            }
        }
        _ => Placement::NotHere(format!(
            "arch: {arch} needs an {arch} machine or emulation of it on this {} host (binfmt, e.g. qemu-user-static), and neither is here",
            hosting.host_arch
        )),
    }
}

fn os_name(os: &str) -> &str {
    match os {
        "osx" => "macOS",
        "windows" => "Windows",
        "freebsd" => "FreeBSD",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Context;

    fn job(yaml: &str) -> Job {
        let plan = crate::plan(".travis.yml", yaml.as_bytes(), &Context::default()).unwrap();
        plan.stages[0].jobs[0].clone()
    }

    fn amd64() -> Hosting {
        Hosting {
            host_arch: "amd64".into(),
            ..Hosting::default()
        }
    }

    #[test]
    fn other_oses_are_not_run_here_unless_mapped() {
        let osx = job("os: osx\nscript: true\n");
        let Placement::NotHere(why) = place(&osx, &amd64()) else {
            panic!("osx placed here")
        };
        assert!(
            why.contains("macOS") && why.contains("[os_images]"),
            "{why}"
        );
        let mut mapped = amd64();
        mapped.os_images.insert("osx".into(), "my/mac:1".into());
        assert_eq!(
            place(&osx, &mapped),
            Placement::Here {
                image: Some("my/mac:1".into()),
                platform: None
            }
        );
        assert!(matches!(
            place(&job("script: true\n"), &amd64()),
            Placement::Here { image: None, .. }
        ));
    }

    #[test]
    fn arch_needs_the_host_or_emulation() {
        let arm = job("arch: arm64\nscript: true\n");
        assert!(matches!(place(&arm, &amd64()), Placement::NotHere(_)));
        let mut emulating = amd64();
        emulating.emulated_arches.push("arm64".into());
        assert_eq!(
            place(&arm, &emulating),
            Placement::Here {
                image: None,
                platform: Some("linux/arm64".into())
            }
        );
        let native = job("arch: amd64\nscript: true\n");
        assert_eq!(
            place(&native, &amd64()),
            Placement::Here {
                image: None,
                platform: None
            }
        );
    }
}
