# slipway-test/debian-ruby: slipway-test/debian plus Debian's ruby (with `gem`), for jobs that
# build gems (`gem build`, as the rubygems deploy runs it). MIRROR and SUITE are read from the
# host's apt configuration by scripts/test-images.sh.
FROM slipway-test/debian:latest
ARG MIRROR
ARG SUITE
RUN printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > /etc/apt/sources.list \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ruby >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
CMD ["bash"]
