# slipway-test/debian-python: slipway-test/debian plus Debian's python3 with setuptools and wheel,
# for jobs that build Python distributions (`python setup.py sdist bdist_wheel`, as the pypi
# deploy runs it). MIRROR and SUITE are read from the host's apt configuration by
# scripts/test-images.sh.
FROM slipway-test/debian:latest
ARG MIRROR
ARG SUITE
RUN printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > /etc/apt/sources.list \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-setuptools python3-wheel >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
CMD ["bash"]
