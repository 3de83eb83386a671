# checks.<system>.adp-nixos-module: the NixOS module in a VM (nixpkgs'
# testers.runNixOSTest). The machine boots with services.agent-data-plane
# pointed at the workspace's test intake (a second unit), a metric goes in
# over UDP and one over the Unix socket from an unprivileged user, and the
# test intake must show both with the configured host and tags, and the
# system checks' metrics from the package's conf.d. It also
# checks that the API key is nowhere in /etc or the unit.
#
# It needs KVM and the binary cache, so `make check` has no twin of it
# (checks/parity.sh lists why): it runs where `nix flake check` runs on a
# builder with the kvm feature (Hydra, the GitHub runners).
{
  pkgs,
  module,
  adp,
}:

pkgs.testers.runNixOSTest {
  name = "agent-data-plane-module";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ module ];

      # A key the test may know; a real one comes from sops-nix, agenix, ...
      systemd.tmpfiles.rules = [
        "d /run/keys 0750 root root -"
        "f /run/keys/datadog_api_key 0400 root root - 0123456789abcdef0123456789abcdef"
      ];

      systemd.services.adp-test-intake = {
        description = "the workspace's test intake (decodes what the agent forwards)";
        wantedBy = [ "multi-user.target" ];
        before = [ "agent-data-plane.service" ];
        serviceConfig = {
          ExecStart = "${adp}/bin/adp-test-intake --listen 127.0.0.1:8080";
          DynamicUser = true;
        };
      };

      services.agent-data-plane = {
        enable = true;
        apiKeyFile = "/run/keys/datadog_api_key";
        ddUrl = "http://127.0.0.1:8080";
        hostname = "vm-board";
        tags = [ "env:vm" ];
        logLevel = "DEBUG";
        # file_handle is shipped off (conf.yaml.example); an entry turns it on.
        checks.file_handle.instances = [ { min_collection_interval = 5; } ];
        # Flush every second instead of every 15 (extraConfig is merged in).
        extraConfig = {
          aggregate_window_duration_seconds = 1;
          aggregate_flush_interval = 1;
        };
      };

      environment.systemPackages = [
        pkgs.curl
        pkgs.socat
      ];
    };

  testScript = ''
    import json

    machine.wait_for_unit("adp-test-intake.service")
    machine.wait_for_unit("agent-data-plane.service")
    machine.wait_until_succeeds("curl -sf http://127.0.0.1:5100/health/ready", timeout=120)

    with subtest("a metric over UDP and one over the socket from an unprivileged user"):
        machine.succeed("printf 'vm.udp.count:3|c|#via:udp' | socat - UDP-SENDTO:127.0.0.1:8125")
        machine.succeed(
            "runuser -u nobody -- sh -c "
            + "\"printf 'vm.uds.gauge:42|g|#via:uds' | socat - UNIX-SENDTO:/run/agent-data-plane/dsd.socket\""
        )

    with subtest("the test intake decoded both, with the configured host"):
        def received(_):
            seen = machine.succeed("curl -sf http://127.0.0.1:8080/_intake/received")
            return "vm.udp.count" in seen and "vm.uds.gauge" in seen and "vm-board" in seen
        retry(received, timeout=120)
        print(json.dumps(json.loads(machine.succeed("curl -sf http://127.0.0.1:8080/_intake/received")), indent=2)[:4000])

    with subtest("the system checks run from the package's conf.d and the module's checks: the host's metrics arrive"):
        def host_metrics(_):
            seen = machine.succeed("curl -sf http://127.0.0.1:8080/_intake/received")
            return all(
                name in seen
                for name in ("system.load.1", "system.mem.total", "system.uptime", "system.fs.file_handles.allocated")
            )
        retry(host_metrics, timeout=120)

    with subtest("the API key is not in the configuration or the unit"):
        machine.fail("grep -R 0123456789abcdef0123456789abcdef /etc/datadog-agent /etc/systemd/system/agent-data-plane.service")
        machine.succeed("systemctl show agent-data-plane.service -p DynamicUser | grep -q yes")
  '';
}
