# slipway-test/debian-node: slipway-test/debian plus Debian's nodejs and npm, for jobs that run
# node. No npm registry is reachable, so only node itself and what Debian packages is usable.
# MIRROR and SUITE are read from the host's apt configuration by scripts/test-images.sh.
FROM slipway-test/debian:latest
ARG MIRROR
ARG SUITE
RUN printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > /etc/apt/sources.list \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
CMD ["bash"]
