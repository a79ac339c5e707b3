//! What this machine offers jobs: its architecture, the ones it emulates, and the operator's
//! images for other operating systems; [`slipway_pipelines::placement`] decides from it.

use std::collections::BTreeMap;
use std::path::Path;

use slipway_pipelines::placement::{Hosting, travis_arch};

/// binfmt handlers (`/proc/sys/fs/binfmt_misc/qemu-*`) and the Travis architecture each runs.
const EMULATORS: &[(&str, &str)] = &[
    ("qemu-aarch64", "arm64"),
    ("qemu-x86_64", "amd64"),
    ("qemu-ppc64le", "ppc64le"),
    ("qemu-s390x", "s390x"),
    ("qemu-i386", "i386"),
];

/// The hosting of this machine, with the operator's `os_images`. The engine is assumed to run on
/// this machine (a local socket), so its emulators are the kernel's binfmt handlers here.
pub fn detect(os_images: BTreeMap<String, String>) -> Hosting {
    detect_in(Path::new("/proc/sys/fs/binfmt_misc"), os_images)
}

/// [`detect`] reading binfmt handlers from `dir`.
pub fn detect_in(dir: &Path, os_images: BTreeMap<String, String>) -> Hosting {
    let host_arch = travis_arch(std::env::consts::ARCH).to_owned();
    let emulated_arches = EMULATORS
        .iter()
        .filter(|(handler, arch)| *arch != host_arch && enabled(&dir.join(handler)))
        .map(|(_, arch)| (*arch).to_owned())
        .collect();
    Hosting {
        os_images,
        host_arch,
        emulated_arches,
    }
}

/// A binfmt handler file exists and says `enabled`.
fn enabled(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.lines().next() == Some("enabled"))
}
