//! `sudo` for jobs that run as root in images without it.
//!
//! Travis's VMs ran jobs as a user with password-less `sudo`, so a fifth of real pipeline files run
//! `sudo apt-get install …`. Container images usually run as root and have no `sudo` at all, where
//! those commands end with `sudo: command not found`. When the job runs as root and the image has
//! no `sudo`, the script puts [`SHIM_DIR`] first on `PATH`; its `sudo` accepts the flags scripts
//! use and runs the command as root (or as another user through `runuser`/`su`). An image's own
//! `sudo` is never shadowed.

use crate::executor::FileSpec;

/// Where the shim lives inside the job container.
pub const SHIM_DIR: &str = "/slipway/sudo-shim";

/// The shim: a POSIX `sh` script.
const SHIM: &str = r#"#!/bin/sh
# sudo for a job that already runs as root (the image has no sudo of its own).
slipway_sudo_user=
slipway_sudo_shell=
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -u|--user) slipway_sudo_user=$2; shift 2 ;;
    -u*) slipway_sudo_user=${1#-u}; shift ;;
    --user=*) slipway_sudo_user=${1#--user=}; shift ;;
    -i|--login|-s|--shell) slipway_sudo_shell=1; shift ;;
    --preserve-env|--preserve-env=*|--non-interactive|--set-home|--stdin|--reset-timestamp) shift ;;
    -[EHnSkAbPi]*)
      slipway_sudo_flags=${1#-}
      case "$slipway_sudo_flags" in *[!EHnSkAbPis]*)
        printf 'sudo (Slipway): unsupported option %s; this sudo runs commands as root and accepts -E, -H, -n, -S, -i, -s, -u USER and --\n' "$1" >&2
        exit 1 ;;
      esac
      case "$slipway_sudo_flags" in *[is]*) slipway_sudo_shell=1 ;; esac
      shift ;;
    -*)
      printf 'sudo (Slipway): unsupported option %s; this sudo runs commands as root and accepts -E, -H, -n, -S, -i, -s, -u USER and --\n' "$1" >&2
      exit 1 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ] && [ -z "$slipway_sudo_shell" ]; then
  printf '%s\n' 'usage: sudo [-EHn] [-u user] [--] command [args...]' >&2
  exit 1
fi
if [ -n "$slipway_sudo_shell" ]; then
  if [ $# -eq 0 ]; then set -- "${SHELL:-/bin/sh}"; else set -- "${SHELL:-/bin/sh}" -c "$*"; fi
fi
case "$slipway_sudo_user" in
  ''|root|0|'#0') exec env "$@" ;;
esac
if command -v runuser >/dev/null 2>&1; then exec runuser -u "$slipway_sudo_user" -- env "$@"; fi
if command -v su >/dev/null 2>&1; then exec su -s /bin/sh -c 'exec env "$@"' "$slipway_sudo_user" -- sh "$@"; fi
printf 'sudo (Slipway): cannot run as %s: the image has neither runuser nor su\n' "$slipway_sudo_user" >&2
exit 1
"#;

/// The shim file copied into every job container (inert unless the prelude puts it on `PATH`).
pub fn shim_file() -> FileSpec {
    FileSpec {
        path: format!("{SHIM_DIR}/sudo"),
        contents: SHIM.as_bytes().to_vec().into(),
        mode: 0o755,
        secret: false,
    }
}

/// Script lines that put the shim on `PATH` when the job runs as root and the image has no `sudo`.
/// The shell reads its effective user id from `/proc/self/status` itself (`id -u` would be a
/// process of its own before the job's first command); `id -u` answers where that file cannot be
/// read.
pub fn prelude() -> String {
    format!(
        "if ! command -v sudo >/dev/null 2>&1; then\n\
         slipway_uid=\n\
         if [ -r /proc/self/status ]; then while read -r slipway_k _ slipway_v _; do \
         if [ \"$slipway_k\" = Uid: ]; then slipway_uid=$slipway_v; break; fi; done </proc/self/status; fi\n\
         [ -n \"$slipway_uid\" ] || slipway_uid=$(id -u 2>/dev/null)\n\
         if [ \"$slipway_uid\" = 0 ]; then PATH=\"{SHIM_DIR}:$PATH\"; export PATH; fi\n\
         fi\n"
    )
}
