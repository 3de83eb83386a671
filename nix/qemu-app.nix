# apps.adp-armv7-qemu: runs the shipped armv7 binary under qemu-user on any
# Linux build machine, with the image's own runtime as its root:
#   nix run .#adp-armv7-qemu -- run --config datadog.yaml
{
  writeShellScript,
  qemu-user,
  binary,
  rootfs,
}:

{
  type = "app";
  program = "${writeShellScript "adp-armv7-qemu" ''
    exec ${qemu-user}/bin/qemu-arm -L ${rootfs} ${binary}/bin/agent-data-plane "$@"
  ''}";
  meta.description = "agent-data-plane for armv7, run under qemu-arm with its image runtime";
}
