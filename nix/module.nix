# nixosModules.default: services.agent-data-plane, the agent as a NixOS
# service. The options follow nixpkgs' services.datadog-agent
# (nixos/modules/services/monitoring/datadog-agent.nix): the same names and
# types for enable, package, apiKeyFile, site, ddUrl, hostname, tags,
# logLevel, extraConfig, checks, diskCheck and networkCheck (diskCheck and
# networkCheck nullable: the package's defaults apply unless set), plus the
# DogStatsD port and socket. The system checks run as with the IoT Agent:
# /etc/datadog-agent/conf.d holds the package's conf.yaml.default files.
#
# The API key is never in the store: apiKeyFile is a path string, read by
# systemd (LoadCredential) into the unit's credentials directory, from where
# the start script exports it as DD_API_KEY. The unit runs as a dynamic
# user with a read-only system (ProtectSystem=strict); its state (auth
# token, IPC certificate) is in /var/lib/agent-data-plane and the DogStatsD
# socket in the runtime directory /run/agent-data-plane.
#
# Called by flake.nix with the function that builds the package for a
# package set (nix/native-package.nix), so that the default package is
# built by and for the system's own pkgs (cross-compiled NixOS systems too).
{ mkPackage }:

{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;
  cfg = config.services.agent-data-plane;
  # A string key of datadog.yaml that is left out while null (the agent's default).
  unsetOrStr =
    example: description:
    mkOption {
      type = types.nullOr types.str;
      default = null;
      inherit example description;
    };
  stateDir = "/var/lib/agent-data-plane";

  # What this module sets; extraConfig is merged over it.
  generated = {
    # Standalone: datadog.yaml is the only configuration, no core Agent.
    data_plane = {
      enabled = true;
      standalone_mode = true;
      remote_agent_enabled = false;
      use_new_config_stream_endpoint = false;
      dogstatsd.enabled = true;
    };
    dogstatsd_port = cfg.dogstatsd.port;
    # The agent's writable files, in its StateDirectory (the defaults are
    # under /etc and /opt, read-only here): the same three files the FHS
    # unit (packaging/agent-data-plane.service) moves to its state directory
    # with DD_* variables. Here datadog.yaml is the module's own, so they are
    # keys, which extraConfig can override.
    auth_token_file_path = "${stateDir}/auth_token";
    ipc_cert_file_path = "${stateDir}/ipc_cert.pem";
    run_path = "${stateDir}/run";
  }
  // lib.optionalAttrs (cfg.site != null) { inherit (cfg) site; }
  // lib.optionalAttrs (cfg.ddUrl != null) { dd_url = cfg.ddUrl; }
  // lib.optionalAttrs (cfg.hostname != null) { inherit (cfg) hostname; }
  // lib.optionalAttrs (cfg.tags != [ ]) { inherit (cfg) tags; }
  // lib.optionalAttrs (cfg.logLevel != null) { log_level = cfg.logLevel; }
  // lib.optionalAttrs (cfg.dogstatsd.socket != null) { dogstatsd_socket = cfg.dogstatsd.socket; };

  # JSON is YAML; nixpkgs' datadog-agent module writes its datadog.yaml the
  # same way.
  configFile = pkgs.writeText "datadog.yaml" (builtins.toJSON (lib.recursiveUpdate generated cfg.extraConfig));

  # The agent's default confd_path, /etc/datadog-agent/conf.d: the package's
  # conf.yaml.default files (the system checks on by default, as in the IoT
  # Agent) and a conf.yaml per entry of `checks`, which the agent prefers
  # over the default beside it.
  confd = pkgs.runCommand "agent-data-plane-conf.d" { } (
    ''
      cp -r ${cfg.package}/etc/datadog-agent/conf.d $out
      chmod -R u+w $out
    ''
    + lib.concatStrings (
      lib.mapAttrsToList (name: value: ''
        mkdir -p $out/${name}.d
        cp ${pkgs.writeText "${name}.yaml" (builtins.toJSON value)} $out/${name}.d/conf.yaml
      '') allChecks
    )
  );
  # services.datadog-agent configures these two in options of their own.
  allChecks =
    lib.optionalAttrs (cfg.diskCheck != null) { disk = cfg.diskCheck; }
    // lib.optionalAttrs (cfg.networkCheck != null) { network = cfg.networkCheck; }
    // cfg.checks;
in
{
  options.services.agent-data-plane = {
    enable = lib.mkEnableOption "the Datadog Agent Data Plane (DogStatsD: receive, aggregate, forward to Datadog)";

    package = mkOption {
      type = types.package;
      default = mkPackage pkgs;
      defaultText = lib.literalMD "agent-data-plane built for this system's `pkgs` (the flake's `overlays.default` package)";
      description = "The agent-data-plane package to run.";
    };

    apiKeyFile = mkOption {
      type = types.str;
      example = "/run/keys/datadog_api_key";
      description = ''
        Absolute path of a file holding the Datadog API key (its first line).
        systemd reads it as a credential when the service starts; it is never
        copied into the Nix store, so give a path string, not a Nix path.
      '';
    };

    site = unsetOrStr "datadoghq.eu" "The Datadog site to send to (the agent's default: datadoghq.com).";

    ddUrl = unsetOrStr "http://haproxy.example.com:3834" ''
      Custom dd_url (a proxy, or a test intake); use `site` to choose
      another Datadog site.
    '';

    hostname = unsetOrStr "mymachine.mydomain" "The host name the metrics are reported under (default: the system's).";

    tags = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "env:prod"
        "room:lab"
      ];
      description = "Host tags, written to datadog.yaml's `tags`.";
    };

    logLevel = mkOption {
      type = types.nullOr (
        types.enum [
          "TRACE"
          "DEBUG"
          "INFO"
          "WARN"
          "ERROR"
          "CRITICAL"
          "OFF"
        ]
      );
      default = null;
      example = "DEBUG";
      description = "Logging verbosity (the agent's default: INFO).";
    };

    dogstatsd = {
      port = mkOption {
        type = types.port;
        default = 8125;
        description = "DogStatsD UDP port on 127.0.0.1 (0 disables UDP).";
      };

      socket = mkOption {
        type = types.nullOr types.str;
        default = "/run/agent-data-plane/dsd.socket";
        description = ''
          DogStatsD Unix datagram socket (mode 0722: any local user may send),
          or null for none. The default is in the unit's runtime directory.
        '';
      };
    };

    checks = mkOption {
      # As services.datadog-agent.checks: a check's instances are up to the
      # check, so the values are not typed further.
      type = types.attrsOf types.attrs;
      default = { };
      example = {
        disk.instances = [ { use_mount = false; } ];
        file_handle.instances = [ { } ];
      };
      description = ''
        Check configurations, written to conf.d/<name>.d/conf.yaml. The
        system checks of the IoT Agent (cpu, disk, io, load, memory, network,
        ntp, uptime) run with their defaults without an entry here;
        file_handle runs once it has one.
      '';
    };

    diskCheck = mkOption {
      type = types.nullOr types.attrs;
      default = null;
      example = {
        init_config = { };
        instances = [ { use_mount = false; } ];
      };
      description = "The disk check's conf.yaml, as services.datadog-agent.diskCheck (null: the shipped default).";
    };

    networkCheck = mkOption {
      type = types.nullOr types.attrs;
      default = null;
      example = {
        init_config = { };
        instances = [ { excluded_interfaces = [ "lo" ]; } ];
      };
      description = "The network check's conf.yaml, as services.datadog-agent.networkCheck (null: the shipped default).";
    };

    extraConfig = mkOption {
      type = types.attrs;
      default = { };
      example = {
        aggregate_context_limit = 100000;
        memory_limit = "150MiB";
      };
      description = ''
        More datadog.yaml keys (Datadog Agent names), merged recursively over
        what the options above generate.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/" cfg.apiKeyFile && !lib.hasPrefix builtins.storeDir cfg.apiKeyFile;
        message = "services.agent-data-plane.apiKeyFile must be an absolute path outside the Nix store (got ${cfg.apiKeyFile})";
      }
    ];

    environment.etc."datadog-agent/datadog.yaml".source = configFile;
    environment.etc."datadog-agent/conf.d".source = confd;

    systemd.services.agent-data-plane = {
      description = "Datadog Agent Data Plane (DogStatsD)";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      restartTriggers = [
        configFile
        confd
      ];

      script = ''
        DD_API_KEY=$(head -n 1 "$CREDENTIALS_DIRECTORY/api_key")
        export DD_API_KEY
        exec ${lib.getExe cfg.package} --config /etc/datadog-agent/datadog.yaml run
      '';
      path = [ pkgs.coreutils ];

      serviceConfig = {
        Type = "exec";
        Restart = "on-failure";
        RestartSec = "5s";
        # The agent flushes and exits on SIGTERM.
        TimeoutStopSec = "30s";

        LoadCredential = [ "api_key:${cfg.apiKeyFile}" ];
        DynamicUser = true;
        StateDirectory = "agent-data-plane";
        StateDirectoryMode = "0700";
        RuntimeDirectory = "agent-data-plane";
        RuntimeDirectoryMode = "0755";

        # As packaging/agent-data-plane.service, the FHS release's unit.
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        SystemCallErrorNumber = "EPERM";
        UMask = "0027";
      };
    };
  };
}
