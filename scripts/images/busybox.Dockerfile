# slipway-test/busybox: the smallest image with a POSIX shell, for runner tests that only need
# to start a container and run a command. The build context is prepared by scripts/test-images.sh:
# rootfs/ holds Debian's static busybox, its applet symlinks (sh among them) and /tmp.
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
