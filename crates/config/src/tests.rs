use super::*;

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
}

fn from_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_env(Path::new("/etc/datadog-agent"), &env(pairs))
}

fn from_yaml(yaml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_yaml(
        yaml,
        Path::new("/etc/datadog-agent/datadog.yaml"),
        Path::new("/etc/datadog-agent"),
        &env(pairs),
    )
}

fn invalid(result: Result<Config, ConfigError>) -> Vec<InvalidValue> {
    match result {
        Err(ConfigError::Invalid(errors)) => errors,
        other => panic!("expected invalid values, got {other:?}"),
    }
}

#[test]
fn defaults_match_the_datadog_agent() {
    let c = from_env(&[]).unwrap();
    assert_eq!(c.api_key, "");
    assert_eq!(c.site, "datadoghq.com");
    assert_eq!(c.intake_url(), "https://app.datadoghq.com");
    assert_eq!(c.log_level, LogLevel::Info);
    assert!(!c.log_format_json);
    assert!(!c.data_plane.enabled);
    assert!(!c.data_plane.standalone_mode);
    assert!(c.data_plane.remote_agent_enabled);
    assert!(c.data_plane.use_new_config_stream_endpoint);
    assert!(c.data_plane.dogstatsd.enabled);
    assert_eq!(c.data_plane.api_listen_address, "0.0.0.0:5100".parse().unwrap());
    assert_eq!(c.data_plane.secure_api_listen_address, "0.0.0.0:5101".parse().unwrap());
    assert_eq!(c.data_plane.shutdown_drain_timeout, Duration::from_secs(10));
    assert_eq!(c.dogstatsd.port, 8125);
    assert_eq!(
        c.dogstatsd.udp_listen_address(),
        Some("127.0.0.1:8125".parse().unwrap())
    );
    assert_eq!(c.dogstatsd.socket, None);
    assert_eq!(c.dogstatsd.stream_socket, None);
    assert_eq!(c.dogstatsd.buffer_size, 8192);
    assert_eq!(c.dogstatsd.string_interner_size, 2 * 1024 * 1024);
    assert_eq!(c.dogstatsd.queue_size, 1024);
    assert_eq!(c.dogstatsd.minimum_sample_rate, 0.000000003845);
    assert_eq!(c.dogstatsd.context_expiry_seconds, 20);
    assert_eq!(c.aggregate.window_duration_seconds, 10);
    assert_eq!(c.aggregate.flush_interval, Duration::from_secs(15));
    assert_eq!(c.aggregate.context_limit, 1_000_000);
    assert_eq!(c.aggregate.counter_expiry_seconds, 300);
    assert_eq!(c.aggregate.histogram_aggregates, ["max", "median", "avg", "count"]);
    assert_eq!(c.aggregate.histogram_percentiles, [0.95]);
    assert_eq!(c.forwarder.timeout, Duration::from_secs(20));
    assert_eq!(c.forwarder.retry_queue_payloads_max_size, 15 * 1024 * 1024);
    assert_eq!(c.forwarder.storage_max_size_in_bytes, 0);
    assert_eq!(
        c.forwarder.storage_path,
        Path::new("/opt/datadog-agent/run/transactions_to_retry")
    );
    assert_eq!(c.forwarder.outdated_file_in_days, 10);
    assert_eq!(c.forwarder.backoff_base, Duration::from_secs(2));
    assert_eq!(c.forwarder.backoff_max, Duration::from_secs(64));
    assert_eq!(c.forwarder.high_prio_buffer_size, 100);
    assert_eq!(c.serializer.compressor_kind, Compression::Zstd);
    assert_eq!(c.serializer.zstd_compressor_level, 1);
    assert_eq!(c.serializer.max_series_payload_size, 512_000);
    assert_eq!(c.serializer.max_series_points_per_payload, 10_000);
    assert_eq!(c.auth_token_file_path, Path::new("/etc/datadog-agent/auth_token"));
    assert_eq!(c.ipc_cert_file_path, Path::new("/etc/datadog-agent/ipc_cert.pem"));
    assert_eq!(c.memory.memory_limit, 0);
    assert_eq!(c.memory.effective_limit(), None);
    assert_eq!(
        c.proxy,
        ProxyConfig {
            http: None,
            https: None,
            no_proxy: vec![]
        }
    );
}

#[test]
fn environment_overrides_the_file_and_nested_keys_join_with_underscores() {
    let yaml = "
dogstatsd_port: 9000
hostname: from-file
data_plane:
  enabled: false
  dogstatsd:
    enabled: false
";
    let c = from_yaml(
        yaml,
        &[("DD_DOGSTATSD_PORT", "9100"), ("DD_DATA_PLANE_ENABLED", "true")],
    )
    .unwrap();
    assert_eq!(c.dogstatsd.port, 9100);
    assert!(c.data_plane.enabled);
    assert!(!c.data_plane.dogstatsd.enabled, "nested file key read");
    assert_eq!(c.hostname, "from-file");
    assert_eq!(
        env_var_name("data_plane.dogstatsd.enabled"),
        "DD_DATA_PLANE_DOGSTATSD_ENABLED"
    );
}

#[test]
fn empty_environment_variables_and_yaml_nulls_count_as_unset() {
    let c = from_yaml(
        "dogstatsd_port: 9000\nhostname: ~\n",
        &[("DD_DOGSTATSD_PORT", ""), ("DD_HOSTNAME", "")],
    )
    .unwrap();
    assert_eq!(c.dogstatsd.port, 9000);
    assert_eq!(c.hostname, "");
}

#[test]
fn booleans_accept_true_false_one_and_zero_in_any_case() {
    for (text, want) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("false", false),
        ("False", false),
        ("0", false),
    ] {
        let c = from_env(&[("DD_LOG_FORMAT_JSON", text)]).unwrap();
        assert_eq!(c.log_format_json, want, "{text}");
    }
    let c = from_yaml("log_format_json: 1\ndata_plane: {enabled: \"true\"}\n", &[]).unwrap();
    assert!(c.log_format_json && c.data_plane.enabled);
    let errors = invalid(from_env(&[("DD_DATA_PLANE_ENABLED", "yes")]));
    assert_eq!(
        errors[0].to_string(),
        "invalid value for `data_plane.enabled` (from DD_DATA_PLANE_ENABLED): \"yes\": expected a boolean (true, false, 1 or 0)"
    );
}

#[test]
fn an_invalid_value_names_the_key_its_origin_the_value_and_what_is_expected() {
    let err = from_env(&[("DD_DOGSTATSD_PORT", "abc")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value for `dogstatsd_port` (from DD_DOGSTATSD_PORT): \"abc\": expected an integer 0-65535"
    );
    let err = from_yaml("dogstatsd_port: 70000\n", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value for `dogstatsd_port` (from /etc/datadog-agent/datadog.yaml): 70000: expected an integer 0-65535"
    );
}

#[test]
fn every_invalid_value_is_reported_at_once() {
    let errors = invalid(from_yaml(
        "aggregate_flush_interval: soon\nmemory_mode: lax\n",
        &[("DD_DOGSTATSD_BUFFER_SIZE", "0"), ("DD_LOG_LEVEL", "loud")],
    ));
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "log_level",
            "dogstatsd_buffer_size",
            "aggregate_flush_interval",
            "memory_mode"
        ]
    );
    assert_eq!(errors[3].expected, "one of disabled, permissive, strict");
    let text = ConfigError::Invalid(errors).to_string();
    assert!(
        text.starts_with("4 invalid configuration values:\n  - invalid value for `log_level`"),
        "{text}"
    );
}

#[test]
fn keys_for_other_agent_components_are_ignored() {
    let yaml = "
api_key: abc
logs_enabled: true
logs_config:
  container_collect_all: true
apm_config:
  enabled: [1, 2]
process_config: {process_collection: {enabled: true}}
";
    let c = from_yaml(yaml, &[("DD_APM_ENABLED", "whatever"), ("DD_LOGS_CONFIG_FOO", "x")]).unwrap();
    assert_eq!(c.api_key, "abc");
}

#[test]
fn lists_come_from_yaml_sequences_or_space_separated_environment_values() {
    let c = from_env(&[
        ("DD_HISTOGRAM_AGGREGATES", "max  min sum"),
        ("DD_PROXY_NO_PROXY", "a.example b.example"),
    ])
    .unwrap();
    assert_eq!(c.aggregate.histogram_aggregates, ["max", "min", "sum"]);
    assert_eq!(c.proxy.no_proxy, ["a.example", "b.example"]);
    let c = from_env(&[("DD_HISTOGRAM_AGGREGATES", r#"["count", "sum"]"#)]).unwrap();
    assert_eq!(c.aggregate.histogram_aggregates, ["count", "sum"]);
    let c = from_yaml("histogram_percentiles: ['0.5', 0.95, '0.95', 0.991]\n", &[]).unwrap();
    assert_eq!(
        c.aggregate.histogram_percentiles,
        [0.5, 0.95, 0.99],
        "rounded to two decimals, deduplicated"
    );
}

#[test]
fn percentiles_outside_zero_to_one_and_unknown_aggregates_are_rejected() {
    let errors = invalid(from_env(&[
        ("DD_HISTOGRAM_PERCENTILES", "0.95 0.999"),
        ("DD_HISTOGRAM_AGGREGATES", "max p50"),
    ]));
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].key, "histogram_aggregates");
    assert_eq!(errors[0].expected, "a list of: max, min, median, avg, sum, count");
    assert_eq!(errors[1].key, "histogram_percentiles");
}

#[test]
fn durations_take_seconds_or_a_unit() {
    for (text, want) in [
        ("2", 2000),
        ("0.5", 500),
        ("250ms", 250),
        ("3s", 3000),
        ("2m", 120_000),
        ("1h", 3_600_000),
    ] {
        let c = from_env(&[("DD_AGGREGATE_FLUSH_INTERVAL", text)]).unwrap();
        assert_eq!(c.aggregate.flush_interval, Duration::from_millis(want), "{text}");
    }
    let c = from_yaml("data_plane: {shutdown_drain_timeout: 0}\nforwarder_timeout: 5\n", &[]).unwrap();
    assert_eq!(c.data_plane.shutdown_drain_timeout, Duration::ZERO);
    assert_eq!(c.forwarder.timeout, Duration::from_secs(5));
    for bad in ["0", "-1", "2d", "1ms", "forever"] {
        let errors = invalid(from_env(&[("DD_AGGREGATE_FLUSH_INTERVAL", bad)]));
        assert_eq!(errors[0].key, "aggregate_flush_interval", "{bad}");
        assert!(
            errors[0].expected.starts_with("a duration of at least 10ms"),
            "{}",
            errors[0].expected
        );
    }
}

#[test]
fn byte_sizes_take_units_and_stay_exact_above_four_gibibytes() {
    for (text, want) in [
        ("268435456", 268_435_456u64),
        ("256MiB", 256 << 20),
        ("256 mb", 256_000_000),
        ("1.5GiB", 3 << 29),
        ("8GiB", 8 << 30),
        ("1TiB", 1 << 40),
    ] {
        let c = from_env(&[("DD_MEMORY_LIMIT", text)]).unwrap();
        assert_eq!(c.memory.memory_limit, want, "{text}");
    }
    for bad in ["-1", "12 parsecs", "99999999999999999999", "20000000TiB"] {
        let errors = invalid(from_env(&[("DD_MEMORY_LIMIT", bad)]));
        assert_eq!(errors[0].key, "memory_limit", "{bad}");
    }
}

#[test]
fn the_memory_limit_holds_back_the_slop_factor() {
    let c = from_env(&[("DD_MEMORY_LIMIT", "1000000000"), ("DD_MEMORY_SLOP_FACTOR", "0.2")]).unwrap();
    assert_eq!(c.memory.effective_limit(), Some(800_000_000));
    let c = from_env(&[("DD_MEMORY_LIMIT", "8GiB"), ("DD_MEMORY_SLOP_FACTOR", "0")]).unwrap();
    assert_eq!(c.memory.effective_limit(), Some(8 << 30));
    let c = from_env(&[("DD_MEMORY_LIMIT", "8GiB"), ("DD_MEMORY_MODE", "disabled")]).unwrap();
    assert_eq!(c.memory.effective_limit(), None);
    let errors = invalid(from_env(&[("DD_MEMORY_SLOP_FACTOR", "0.95")]));
    assert_eq!(errors[0].expected, "a fraction between 0 and 0.9");
}

#[test]
fn listen_addresses_are_tcp_urls() {
    let c = from_env(&[
        ("DD_DATA_PLANE_API_LISTEN_ADDRESS", "tcp://127.0.0.1:0"),
        ("DD_DATA_PLANE_SECURE_API_LISTEN_ADDRESS", "tcp://localhost:6101"),
    ])
    .unwrap();
    assert_eq!(c.data_plane.api_listen_address, "127.0.0.1:0".parse().unwrap());
    assert_eq!(
        c.data_plane.secure_api_listen_address,
        "127.0.0.1:6101".parse().unwrap()
    );
    let c = from_yaml("data_plane: {api_listen_address: 'tcp://[::1]:5100'}\n", &[]).unwrap();
    assert_eq!(c.data_plane.api_listen_address, "[::1]:5100".parse().unwrap());

    let errors = invalid(from_env(&[(
        "DD_DATA_PLANE_API_LISTEN_ADDRESS",
        "unix:///var/run/adp.sock",
    )]));
    assert_eq!(
        errors[0].to_string(),
        "invalid value for `data_plane.api_listen_address` (from DD_DATA_PLANE_API_LISTEN_ADDRESS): \
         \"unix:///var/run/adp.sock\": expected a listen address tcp://<ip>:<port>, e.g. tcp://0.0.0.0:5100 \
         (unix:// listeners are not supported yet)"
    );
    for bad in ["0.0.0.0:5100", "tcp://example.com:5100", "tcp://0.0.0.0:99999"] {
        invalid(from_env(&[("DD_DATA_PLANE_API_LISTEN_ADDRESS", bad)]));
    }
}

#[test]
fn dogstatsd_listeners_follow_port_bind_host_and_non_local_traffic() {
    let c = from_env(&[("DD_DOGSTATSD_PORT", "0"), ("DD_DOGSTATSD_SOCKET", "/tmp/dsd.socket")]).unwrap();
    assert_eq!(c.dogstatsd.udp_listen_address(), None);
    assert_eq!(c.dogstatsd.socket.as_deref(), Some(Path::new("/tmp/dsd.socket")));
    let c = from_env(&[
        ("DD_BIND_HOST", "localhost"),
        ("DD_DOGSTATSD_NON_LOCAL_TRAFFIC", "true"),
    ])
    .unwrap();
    assert_eq!(c.dogstatsd.udp_listen_address(), Some("0.0.0.0:8125".parse().unwrap()));
    let c = from_yaml("bind_host: 10.0.0.5\ndogstatsd_socket: ''\n", &[]).unwrap();
    assert_eq!(c.dogstatsd.udp_listen_address(), Some("10.0.0.5:8125".parse().unwrap()));
    assert_eq!(c.dogstatsd.socket, None, "an empty path disables the socket");
    invalid(from_env(&[("DD_BIND_HOST", "my-host.example")]));
}

#[test]
fn aliases_and_extra_environment_variables_are_read() {
    let c = from_yaml("dogstatsd_expiry_seconds: 60\n", &[]).unwrap();
    assert_eq!(c.aggregate.counter_expiry_seconds, 60);
    let c = from_yaml("dogstatsd_expiry_seconds: 60\n", &[("DD_COUNTER_EXPIRY_SECONDS", "30")]).unwrap();
    assert_eq!(c.aggregate.counter_expiry_seconds, 30);
    let c = from_env(&[("DD_URL", "http://127.0.0.1:8080/")]).unwrap();
    assert_eq!(c.intake_url(), "http://127.0.0.1:8080");
    let c = from_env(&[("DD_URL", "http://a"), ("DD_DD_URL", "http://b")]).unwrap();
    assert_eq!(c.intake_url(), "http://b", "DD_DD_URL wins over DD_URL");
    let c = from_env(&[("HTTPS_PROXY", "http://p:3128"), ("NO_PROXY", "localhost,127.0.0.1")]).unwrap();
    assert_eq!(c.proxy.https.as_deref(), Some("http://p:3128"));
    assert_eq!(c.proxy.no_proxy, ["localhost", "127.0.0.1"]);
    let c = from_env(&[("HTTPS_PROXY", "http://p:3128"), ("DD_PROXY_HTTPS", "http://q:3128")]).unwrap();
    assert_eq!(c.proxy.https.as_deref(), Some("http://q:3128"));
    let c = from_env(&[("DD_SITE", "datadoghq.eu")]).unwrap();
    assert_eq!(c.intake_url(), "https://app.datadoghq.eu");
}

#[test]
fn additional_endpoints_come_from_a_yaml_map_or_json_in_the_environment() {
    let c = from_yaml("additional_endpoints:\n  https://app.datadoghq.eu/: [k1, k2]\n", &[]).unwrap();
    assert_eq!(c.additional_endpoints["https://app.datadoghq.eu"], ["k1", "k2"]);
    let c = from_env(&[("DD_ADDITIONAL_ENDPOINTS", r#"{"http://127.0.0.1:9": ["k3"]}"#)]).unwrap();
    assert_eq!(c.additional_endpoints["http://127.0.0.1:9"], ["k3"]);
    let errors = invalid(from_env(&[("DD_ADDITIONAL_ENDPOINTS", "k3")]));
    assert_eq!(errors[0].key, "additional_endpoints");
}

#[test]
fn a_mistyped_secret_is_not_echoed_in_the_error() {
    let errors = invalid(from_yaml("api_key: [secret-one, secret-two]\n", &[]));
    assert_eq!(errors[0].key, "api_key");
    assert_eq!(errors[0].value, "\"********\"");
    assert!(!errors[0].to_string().contains("secret-one"));
}

#[test]
fn the_redacted_rendering_uses_agent_key_names_and_hides_secrets() {
    let c = from_env(&[
        ("DD_API_KEY", "0123456789abcdef0123456789abcdef"),
        ("DD_PROXY_HTTPS", "http://user:hunter2@proxy:3128"),
        ("DD_DOGSTATSD_PORT", "9125"),
    ])
    .unwrap();
    let json = c.to_redacted_json();
    assert_eq!(json["api_key"], REDACTED);
    assert_eq!(json["proxy"]["https"], "http://user:********@proxy:3128");
    assert_eq!(json["dogstatsd_port"], 9125);
    assert_eq!(json["data_plane"]["api_listen_address"], "tcp://0.0.0.0:5100");
    assert_eq!(json["data_plane"]["dogstatsd"]["enabled"], true);
    assert_eq!(json["aggregate_flush_interval"], "15s");
    assert_eq!(json["serializer_compressor_kind"], "zstd");
    assert_eq!(json["auth_token_file_path"], "/etc/datadog-agent/auth_token");
    let yaml = c.to_redacted_yaml();
    assert!(yaml.contains("api_key: '********'"), "{yaml}");
    assert!(
        !yaml.contains("0123456789abcdef") && !yaml.contains("hunter2"),
        "{yaml}"
    );
}

#[test]
fn a_missing_default_file_means_environment_only_but_a_missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("datadog.yaml");
    let c = Config::load(
        &ConfigFile {
            path: missing.clone(),
            explicit: false,
        },
        &env(&[("DD_HOSTNAME", "h")]),
    )
    .unwrap();
    assert_eq!(c.hostname, "h");
    assert_eq!(c.source_file, None);
    assert_eq!(
        c.auth_token_file_path,
        dir.path().join("auth_token"),
        "defaults sit beside the config file"
    );

    let err = Config::load(&ConfigFile::explicit(&missing), &env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::FileNotFound { .. }));
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");

    std::fs::write(&missing, "hostname: from-file\n").unwrap();
    let c = Config::load(&ConfigFile::explicit(&missing), &env(&[])).unwrap();
    assert_eq!(c.hostname, "from-file");
    assert_eq!(c.source_file.as_deref(), Some(missing.as_path()));
}

#[test]
fn malformed_files_are_rejected_with_their_path() {
    let err = from_yaml("dogstatsd_port: [\n", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::ParseFile { .. }), "{err}");
    // The parser's position is the error's source, said once by whoever prints the chain.
    assert_eq!(
        err.to_string(),
        "cannot parse configuration file /etc/datadog-agent/datadog.yaml as YAML"
    );
    let cause = std::error::Error::source(&err).expect("the parser's error").to_string();
    assert!(cause.contains("at line 2 column 1"), "{cause}");
    let err = from_yaml("- a\n- b\n", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration file /etc/datadog-agent/datadog.yaml must be a YAML mapping of keys (like datadog.yaml), not a list"
    );
    assert_eq!(
        from_yaml("", &[]).unwrap(),
        from_env(&[])
            .unwrap()
            .with_source_file("/etc/datadog-agent/datadog.yaml")
    );
}

#[test]
fn shutdown_drain_timeout_also_reads_the_agents_forwarder_stop_timeout() {
    let c = from_yaml("forwarder_stop_timeout: 4\n", &[]).unwrap();
    assert_eq!(c.data_plane.shutdown_drain_timeout, Duration::from_secs(4));
    let c = from_yaml(
        "forwarder_stop_timeout: 4\n",
        &[("DD_DATA_PLANE_SHUTDOWN_DRAIN_TIMEOUT", "250ms")],
    )
    .unwrap();
    assert_eq!(c.data_plane.shutdown_drain_timeout, Duration::from_millis(250));
}

#[test]
fn a_backoff_max_below_the_base_is_rejected() {
    let errors = invalid(from_env(&[
        ("DD_FORWARDER_BACKOFF_BASE", "10"),
        ("DD_FORWARDER_BACKOFF_MAX", "5s"),
    ]));
    assert_eq!(
        errors[0].to_string(),
        "invalid value for `forwarder_backoff_max` (from DD_FORWARDER_BACKOFF_MAX): \"5s\": expected a duration >= forwarder_backoff_base (10s)"
    );
}

#[test]
fn log_levels_accept_the_agent_names() {
    assert_eq!(
        from_env(&[("DD_LOG_LEVEL", "WARNING")]).unwrap().log_level,
        LogLevel::Warn
    );
    assert_eq!(
        from_env(&[("DD_LOG_LEVEL", "critical")]).unwrap().log_level,
        LogLevel::Error
    );
    assert_eq!(LogLevel::parse(" Debug "), Some(LogLevel::Debug));
    assert_eq!(LogLevel::parse("verbose"), None);
}

impl Config {
    fn with_source_file(mut self, path: &str) -> Self {
        self.source_file = Some(PathBuf::from(path));
        self
    }
}
