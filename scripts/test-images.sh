#!/usr/bin/env bash
# Builds the container images the tests run jobs in, without pulling anything.
#
# No registry is reachable, so every image is made from what the machine has: Debian's static
# busybox, a debootstrap root filesystem from the mirror the machine's apt already uses, and
# Debian's nodejs on top of that. Each image carries a label with the hash of its recipe; an image
# whose label matches is left alone, so a second run takes about a second.
#
#   scripts/test-images.sh            build what is missing or out of date
#   scripts/test-images.sh --list     print the image names
#
# Environment: SLIPWAY_IMAGE_CACHE (default /var/tmp/slipway-cache) holds the debootstrap
# tarball, so rebuilding the debian image after `docker rmi` needs no download.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SLIPWAY_IMAGE_CACHE:-/var/tmp/slipway-cache}"
LABEL=org.slipway.recipe

BUSYBOX_IMAGE=slipway-test/busybox:latest
DEBIAN_IMAGE=slipway-test/debian:latest
DEBIAN_NODE_IMAGE=slipway-test/debian-node:latest
DEBIAN_PYTHON_IMAGE=slipway-test/debian-python:latest
DEBIAN_RUBY_IMAGE=slipway-test/debian-ruby:latest
DEBIAN_PACKAGES=bash,git,ca-certificates,curl,openssl

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "$BUSYBOX_IMAGE" "$DEBIAN_IMAGE" "$DEBIAN_NODE_IMAGE" "$DEBIAN_PYTHON_IMAGE" "$DEBIAN_RUBY_IMAGE"
  exit 0
fi

log() { printf '[test-images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The Debian release this machine runs; the images use the same one so host and image binaries agree.
host_suite() {
  # shellcheck disable=SC1091
  (. /etc/os-release && printf '%s\n' "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}")
}

# The mirror apt uses for the main suite, from deb822 .sources files or a one-line sources.list.
host_mirror() {
  local suite="$1" uri=""
  local files=(/etc/apt/sources.list.d/*.sources)
  if [ -e "${files[0]}" ]; then
    uri="$(awk -v suite="$suite" '
      function flush() { if (is_deb && has_suite && uris != "" && !found) { print uris; found = 1 } is_deb = 0; has_suite = 0; uris = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
      tolower($1) == "uris:" { uris = $2 }
      END { flush() }
    ' "${files[@]}")"
  fi
  if [ -z "$uri" ]; then
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v suite="$suite" '
      $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) { print $i; exit } }
    ')"
  fi
  [ -n "$uri" ] || die "no Debian mirror for suite '$suite' in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
  printf '%s\n' "${uri%/}"
}

sha() { sha256sum | cut -c1-64; }

image_recipe() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

# Runs a build step and prints how long it took.
timed() {
  local name="$1" start
  shift
  start=$(date +%s)
  "$@"
  log "$name built in $(($(date +%s) - start)) s"
}

build_busybox() {
  local recipe="$1" busybox ctx applet
  busybox="$(command -v busybox || true)"
  [ -n "$busybox" ] || die "busybox not found: install Debian's busybox-static (scripts/install-test-deps.sh)"
  file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || [ ! -x /usr/bin/file ] \
    || die "$busybox is not statically linked: install Debian's busybox-static"
  ctx="$(mktemp -d)"
  mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/sbin" "$ctx/rootfs/usr/bin" "$ctx/rootfs/usr/sbin" \
    "$ctx/rootfs/tmp" "$ctx/rootfs/etc" "$ctx/rootfs/root"
  chmod 1777 "$ctx/rootfs/tmp"
  cp "$busybox" "$ctx/rootfs/bin/busybox"
  while read -r applet; do
    [ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$ctx/rootfs/$applet"
  done < <("$busybox" --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$ctx/rootfs/etc/group"
  cp "$HERE/images/busybox.Dockerfile" "$ctx/Dockerfile"
  if ! DOCKER_BUILDKIT=0 docker build -q --label "$LABEL=$recipe" -t "$BUSYBOX_IMAGE" "$ctx" >"$CACHE/busybox.log" 2>&1; then
    cat "$CACHE/busybox.log" >&2
    rm -rf "$ctx"
    die "building $BUSYBOX_IMAGE failed"
  fi
  rm -rf "$ctx"
}

# debootstrap a minbase root filesystem into a tarball under $CACHE (kept for later runs).
make_debian_rootfs() {
  local suite="$1" mirror="$2" tarball="$3" docker_cli="$4" root
  command -v debootstrap >/dev/null || die "debootstrap not found: install it (scripts/install-test-deps.sh)"
  root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  log "debootstrap $suite (minbase + $DEBIAN_PACKAGES) into $root"
  if ! debootstrap --variant=minbase --include="$DEBIAN_PACKAGES" "$suite" "$root" "$mirror" \
    >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 30 "$CACHE/debootstrap.log" >&2
    rm -rf "$root"
    die "debootstrap failed (full log: $CACHE/debootstrap.log)"
  fi
  install -m 0755 "$docker_cli" "$root/usr/local/bin/docker"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/*.log "$root"/var/log/apt/*
  tar --numeric-owner -C "$root" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  rm -rf "$root"
}

build_debian() {
  local recipe="$1" suite="$2" mirror="$3" docker_cli="$4" tarball
  tarball="$CACHE/debian-$suite-${recipe:0:16}.tar"
  [ -s "$tarball" ] || make_debian_rootfs "$suite" "$mirror" "$tarball" "$docker_cli"
  docker import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "LABEL $LABEL=$recipe" \
    --change 'CMD ["bash"]' \
    "$tarball" "$DEBIAN_IMAGE" >/dev/null
}

# An image on top of the debian one from scripts/images/NAME.Dockerfile (Debian packages from the
# host's mirror): debian-node, debian-python, debian-ruby.
build_debian_derived() {
  local name="$1" image="$2" recipe="$3" suite="$4" mirror="$5" ctx
  ctx="$(mktemp -d)"
  cp "$HERE/images/$name.Dockerfile" "$ctx/Dockerfile"
  if ! DOCKER_BUILDKIT=0 docker build -q --network host --label "$LABEL=$recipe" \
    --build-arg "MIRROR=$mirror" --build-arg "SUITE=$suite" -t "$image" "$ctx" >"$CACHE/$name.log" 2>&1; then
    tail -n 30 "$CACHE/$name.log" >&2
    rm -rf "$ctx"
    die "building $image failed (full log: $CACHE/$name.log)"
  fi
  rm -rf "$ctx"
}

main() {
  command -v docker >/dev/null || die "docker CLI not found"
  docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable (docker info failed)"
  mkdir -p "$CACHE"
  # One build at a time per machine: several checkouts may run the tests at once.
  exec 9>"$CACHE/images.lock"
  flock 9

  local suite mirror docker_cli recipe
  suite="$(host_suite)"
  mirror="$(host_mirror "$suite")"
  docker_cli="$(command -v docker)"

  recipe="$({ declare -f build_busybox; cat "$HERE/images/busybox.Dockerfile" "$(command -v busybox)"; } | sha)"
  if [ "$(image_recipe "$BUSYBOX_IMAGE")" = "$recipe" ]; then
    log "$BUSYBOX_IMAGE is up to date"
  else
    timed "$BUSYBOX_IMAGE" build_busybox "$recipe"
  fi

  recipe="$({ declare -f build_debian make_debian_rootfs; echo "$suite $mirror $DEBIAN_PACKAGES"; cat "$docker_cli"; } | sha)"
  if [ "$(image_recipe "$DEBIAN_IMAGE")" = "$recipe" ]; then
    log "$DEBIAN_IMAGE is up to date"
  else
    timed "$DEBIAN_IMAGE" build_debian "$recipe" "$suite" "$mirror" "$docker_cli"
  fi

  # Each depends on the exact debian image it was built from.
  local name image
  for name in debian-node debian-python debian-ruby; do
    image="slipway-test/$name:latest"
    recipe="$({ declare -f build_debian_derived; cat "$HERE/images/$name.Dockerfile"; echo "$suite $mirror"; docker image inspect -f '{{.Id}}' "$DEBIAN_IMAGE"; } | sha)"
    if [ "$(image_recipe "$image")" = "$recipe" ]; then
      log "$image is up to date"
    else
      timed "$image" build_debian_derived "$name" "$image" "$recipe" "$suite" "$mirror"
    fi
  done
}

main "$@"
