//! [`DogStatsDConfig`]: the DogStatsD source's keys, declared and read here
//! (their one owner), with the Agent's names and defaults.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use adp_config::{key, parse, MemoryBounds, Raw, Reader};

use crate::codec::MINIMUM_SAMPLE_RATE;
use crate::enrich::EnrichConfig;

/// DogStatsD source configuration (Datadog Agent key names).
#[derive(Clone, Debug, PartialEq)]
pub struct DogStatsDConfig {
    /// `dogstatsd_port`: UDP port to listen on; `0` disables the UDP listener.
    /// Defaults to 8125.
    pub dogstatsd_port: u16,
    /// `bind_host`: the address the UDP listener binds when non-local traffic
    /// is off; `localhost` means 127.0.0.1 (host names are not resolved: a
    /// listener must not depend on DNS at start). Defaults to 127.0.0.1.
    pub bind_host: IpAddr,
    /// `dogstatsd_non_local_traffic`: listen on every interface (`0.0.0.0`)
    /// instead of `bind_host`. Defaults to false.
    pub dogstatsd_non_local_traffic: bool,
    /// `dogstatsd_socket`: a Unix datagram socket to listen on; unset or empty
    /// disables it. Defaults to unset.
    pub dogstatsd_socket: Option<PathBuf>,
    /// `dogstatsd_stream_socket`: a Unix stream socket to listen on; unset or
    /// empty disables it. Defaults to unset.
    pub dogstatsd_stream_socket: Option<PathBuf>,
    /// `dogstatsd_buffer_size`: the largest payload accepted, in bytes, 1 to
    /// 64 MiB; larger datagrams (and stream frames) are counted as truncated
    /// and dropped. Defaults to 8192.
    pub dogstatsd_buffer_size: usize,
    /// `dogstatsd_so_rcvbuf`: the kernel receive buffer per socket
    /// (`SO_RCVBUF`), in bytes; `0` keeps the OS default. Defaults to 0.
    pub dogstatsd_so_rcvbuf: usize,
    /// `dogstatsd_string_interner_size`: the byte budget of the interner
    /// holding context names and tags (units such as `4MiB` accepted), as the
    /// Agent Data Plane reads it: the first bytes of the aggregator's context
    /// store. When it is full, strings go to the heap (see
    /// `dogstatsd_allow_context_heap_allocs`). Defaults to 2 MiB (the Agent's
    /// 4096 entries × 512 B).
    pub dogstatsd_string_interner_size: u64,
    /// `dogstatsd_allow_context_heap_allocs`: when the interner is full, store
    /// a new context's strings on the heap (counted) rather than drop the
    /// context (the Agent Data Plane's key). Defaults to true.
    pub dogstatsd_allow_context_heap_allocs: bool,
    /// `dogstatsd_queue_size`: decoded batches that may wait between the
    /// listeners and the aggregator before the listeners slow down (back
    /// pressure). Defaults to 1024.
    pub dogstatsd_queue_size: usize,
    /// `dogstatsd_permissive_decoding`: accept any printable ASCII in metric
    /// names (except `:` and `|`); when false only letters, digits, ` `, `_`,
    /// `-` and `.`. Defaults to true.
    pub dogstatsd_permissive_decoding: bool,
    /// `dogstatsd_minimum_sample_rate`: sample rates below this are clamped to
    /// it; in (0, 1]. Defaults to 0.000000003845.
    pub dogstatsd_minimum_sample_rate: f64,
    /// `dogstatsd_context_expiry_seconds`: in the Agent, an unused context
    /// leaves the DogStatsD resolver's cache after this long. Accepted for
    /// compatibility and unused: this agent has no resolver cache; a context
    /// lives in the aggregator until a flush leaves it with nothing to send
    /// (counters: `counter_expiry_seconds` after their last sample).
    /// Defaults to 20.
    pub dogstatsd_context_expiry_seconds: u64,
    /// What happens to a metric between the codec and the aggregator:
    /// `dogstatsd_mapper_profiles`, `statsd_metric_namespace`, the blocklist,
    /// `dogstatsd_tags`, `histogram_copy_to_distribution` (see
    /// [`crate::enrich`] for every key).
    pub enrich: EnrichConfig,
}

impl Default for DogStatsDConfig {
    fn default() -> Self {
        Self {
            dogstatsd_port: 8125,
            bind_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            dogstatsd_non_local_traffic: false,
            dogstatsd_socket: None,
            dogstatsd_stream_socket: None,
            dogstatsd_buffer_size: 8192,
            dogstatsd_so_rcvbuf: 0,
            dogstatsd_string_interner_size: 2 * 1024 * 1024,
            dogstatsd_allow_context_heap_allocs: true,
            dogstatsd_queue_size: 1024,
            dogstatsd_permissive_decoding: true,
            dogstatsd_minimum_sample_rate: MINIMUM_SAMPLE_RATE,
            dogstatsd_context_expiry_seconds: 20,
            enrich: EnrichConfig::default(),
        }
    }
}

/// The configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Nothing to listen on.
    #[error(
        "No listeners configured: set `dogstatsd_port` (non-zero), `dogstatsd_socket` or `dogstatsd_stream_socket`"
    )]
    NoListeners,
    /// `dogstatsd_buffer_size` is zero.
    #[error("`dogstatsd_buffer_size` must be at least 1 byte (got 0)")]
    BufferSize,
    /// The interner size is zero or does not fit this platform's address space.
    #[error("`dogstatsd_string_interner_size` must be between 1 byte and the address space (got {0})")]
    InternerSize(u64),
    /// `dogstatsd_minimum_sample_rate` is not in (0, 1].
    #[error("`dogstatsd_minimum_sample_rate` must be in (0, 1] (got {0})")]
    MinimumSampleRate(f64),
}

impl DogStatsDConfig {
    /// Reads the source's keys. Out-of-range values are reported by `r` (all
    /// at once, naming key, origin and what is expected); what `read` returns
    /// then passes [`DogStatsDConfig::validate`].
    pub fn read(r: &mut Reader) -> Self {
        let d = Self::default();
        Self {
            dogstatsd_port: r.get(key!("dogstatsd_port"), d.dogstatsd_port, parse::integer(0, 65535)),
            bind_host: r.get(key!("bind_host"), d.bind_host, bind_host),
            dogstatsd_non_local_traffic: r.get(
                key!("dogstatsd_non_local_traffic"),
                d.dogstatsd_non_local_traffic,
                parse::boolean,
            ),
            dogstatsd_socket: r.get(key!("dogstatsd_socket"), d.dogstatsd_socket, parse::optional_path),
            dogstatsd_stream_socket: r.get(
                key!("dogstatsd_stream_socket"),
                d.dogstatsd_stream_socket,
                parse::optional_path,
            ),
            dogstatsd_buffer_size: r.get(
                key!("dogstatsd_buffer_size"),
                d.dogstatsd_buffer_size,
                parse::integer(1, 64 << 20),
            ),
            dogstatsd_so_rcvbuf: r.get(
                key!("dogstatsd_so_rcvbuf"),
                d.dogstatsd_so_rcvbuf,
                parse::integer(0, i32::MAX as u64),
            ),
            dogstatsd_string_interner_size: r.get(
                key!("dogstatsd_string_interner_size"),
                d.dogstatsd_string_interner_size,
                addressable_size,
            ),
            dogstatsd_allow_context_heap_allocs: r.get(
                key!("dogstatsd_allow_context_heap_allocs"),
                d.dogstatsd_allow_context_heap_allocs,
                parse::boolean,
            ),
            dogstatsd_queue_size: r.get(
                key!("dogstatsd_queue_size"),
                d.dogstatsd_queue_size,
                parse::integer(1, 1 << 20),
            ),
            dogstatsd_permissive_decoding: r.get(
                key!("dogstatsd_permissive_decoding"),
                d.dogstatsd_permissive_decoding,
                parse::boolean,
            ),
            dogstatsd_minimum_sample_rate: r.get(
                key!("dogstatsd_minimum_sample_rate"),
                d.dogstatsd_minimum_sample_rate,
                parse::float("a sample rate in (0, 1]", |v| v > 0.0 && v <= 1.0),
            ),
            dogstatsd_context_expiry_seconds: r.get(
                key!("dogstatsd_context_expiry_seconds"),
                d.dogstatsd_context_expiry_seconds,
                parse::integer(0, 86_400),
            ),
            enrich: EnrichConfig::read(r),
        }
    }

    /// Checks what [`DogStatsDConfig::read`] cannot: that something listens;
    /// and, for a configuration built in code, the ranges `read` enforces.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dogstatsd_port == 0 && self.dogstatsd_socket.is_none() && self.dogstatsd_stream_socket.is_none() {
            return Err(ConfigError::NoListeners);
        }
        if self.dogstatsd_buffer_size == 0 {
            return Err(ConfigError::BufferSize);
        }
        if self.dogstatsd_string_interner_size == 0 || usize::try_from(self.dogstatsd_string_interner_size).is_err() {
            return Err(ConfigError::InternerSize(self.dogstatsd_string_interner_size));
        }
        let rate = self.dogstatsd_minimum_sample_rate;
        if !(rate > 0.0 && rate <= 1.0) {
            return Err(ConfigError::MinimumSampleRate(rate));
        }
        Ok(())
    }

    /// The source's memory: a receive buffer per listener and the interner
    /// (allocated at the first context) from the start; at most, also a full
    /// queue of decoded batches: a batch is the decoded form of less than 1.5
    /// buffers of packets, at most about 4 times their wire size (a plain
    /// StatsD message of 20 bytes decodes to its name and a 32-byte context
    /// and sample).
    pub fn memory_bounds(&self) -> MemoryBounds {
        let listeners = u64::from(self.dogstatsd_port != 0)
            + u64::from(self.dogstatsd_socket.is_some())
            + u64::from(self.dogstatsd_stream_socket.is_some());
        let buffer = u64::try_from(self.dogstatsd_buffer_size).unwrap_or(u64::MAX);
        let queue = u64::try_from(self.dogstatsd_queue_size).unwrap_or(u64::MAX);
        let minimum = listeners
            .saturating_mul(buffer)
            .saturating_add(self.dogstatsd_string_interner_size);
        MemoryBounds {
            component: "dogstatsd",
            minimum,
            firm: minimum.saturating_add(queue.saturating_mul(buffer).saturating_mul(6)),
            key: "dogstatsd_queue_size",
        }
    }
}

/// An IP address or `localhost`.
fn bind_host(raw: Raw<'_>) -> Result<IpAddr, String> {
    const EXPECTED: &str = "an IP address or localhost";
    let s = raw.scalar().ok_or_else(|| EXPECTED.to_owned())?;
    let s = s.trim();
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.parse().map_err(|_| EXPECTED.to_owned())
}

/// A positive byte size that this platform can allocate (a 32-bit board
/// cannot hold a 5 GiB interner).
fn addressable_size(raw: Raw<'_>) -> Result<u64, String> {
    parse::positive_size(raw)
        .ok()
        .filter(|n| usize::try_from(*n).is_ok())
        .ok_or_else(|| format!("a size in bytes from 1 to {} (units such as 4MiB accepted)", usize::MAX))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    adp_config::test_read!(DogStatsDConfig);

    #[test]
    fn defaults_are_the_agents() {
        let c = read("", &[]).unwrap();
        assert_eq!(c, DogStatsDConfig::default());
        assert_eq!(c.dogstatsd_port, 8125);
        assert_eq!(c.bind_host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            (c.dogstatsd_buffer_size, c.dogstatsd_string_interner_size),
            (8192, 2 << 20)
        );
        assert_eq!(c.dogstatsd_queue_size, 1024);
        c.validate().unwrap();
    }

    #[test]
    fn keys_come_from_the_file_and_the_environment_with_agent_names() {
        let c = read(
            "dogstatsd_port: 0\ndogstatsd_socket: /run/dsd.sock\nbind_host: localhost\ndogstatsd_string_interner_size: 4MiB\n",
            &[("DD_DOGSTATSD_STREAM_SOCKET", "/run/dsd-stream.sock"), ("DD_DOGSTATSD_SOCKET", "")],
        )
        .unwrap();
        assert_eq!(c.dogstatsd_port, 0);
        assert_eq!(
            c.dogstatsd_socket.as_deref(),
            Some(Path::new("/run/dsd.sock")),
            "empty env = unset"
        );
        assert_eq!(
            c.dogstatsd_stream_socket.as_deref(),
            Some(Path::new("/run/dsd-stream.sock"))
        );
        assert_eq!(c.dogstatsd_string_interner_size, 4 << 20);
        let c = read("dogstatsd_socket: ''\n", &[]).unwrap();
        assert_eq!(c.dogstatsd_socket, None, "an empty path disables the socket");
    }

    #[test]
    fn invalid_values_name_the_key_and_what_is_expected() {
        let errors = invalid(
            "bind_host: my-board.local\n",
            &[
                ("DD_DOGSTATSD_PORT", "abc"),
                ("DD_DOGSTATSD_BUFFER_SIZE", "0"),
                ("DD_DOGSTATSD_MINIMUM_SAMPLE_RATE", "2"),
            ],
        );
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "dogstatsd_port",
                "bind_host",
                "dogstatsd_buffer_size",
                "dogstatsd_minimum_sample_rate"
            ]
        );
        assert_eq!(
            errors[0].to_string(),
            "invalid value for `dogstatsd_port` (from DD_DOGSTATSD_PORT): \"abc\": expected an integer 0-65535"
        );
        assert_eq!(errors[1].expected, "an IP address or localhost");
    }

    #[test]
    fn enrichment_keys_are_read_from_the_file_and_the_environment_as_the_agent_names_them() {
        let yaml = r#"
statsd_metric_namespace: board
statsd_metric_namespace_blocklist: [sys.]
statsd_metric_blocklist: [board.noisy, board.hist.max]
statsd_metric_blocklist_match_prefix: true
histogram_copy_to_distribution: true
dogstatsd_mapper_profiles:
  - name: airflow
    prefix: "airflow."
    mappings:
      - match: "airflow.job.duration_sec.*.*"
        name: "airflow.job.duration"
        tags: {job_type: "$1", job_name: "$2"}
"#;
        let c = read(
            yaml,
            &[
                ("DD_DOGSTATSD_TAGS", "site:lab rack:3"),
                ("DD_HISTOGRAM_COPY_TO_DISTRIBUTION_PREFIX", "dist."),
                ("DD_DOGSTATSD_MAPPER_CACHE_SIZE", "50"),
            ],
        )
        .unwrap();
        let e = &c.enrich;
        assert_eq!(e.statsd_metric_namespace, "board");
        assert_eq!(
            e.statsd_metric_namespace_blacklist,
            ["sys."],
            "ADP's spelling is an alias"
        );
        assert_eq!(e.dogstatsd_tags, ["site:lab", "rack:3"]);
        assert!(e.histogram_copy_to_distribution && e.statsd_metric_blocklist_match_prefix);
        assert_eq!(e.histogram_copy_to_distribution_prefix, "dist.");
        assert_eq!(e.dogstatsd_mapper_cache_size, 50);
        assert_eq!(e.dogstatsd_mapper_profiles[0].mappings[0].tags["job_name"], "$2");
        assert!(e.blocklist().contains("board.noisy.x"), "prefixes");

        let json = r#"[{"name":"p","prefix":"*","mappings":[{"match":"a.*","name":"b","tags":{"t":"$1"}}]}]"#;
        let c = read("", &[("DD_DOGSTATSD_MAPPER_PROFILES", json)]).unwrap();
        assert_eq!(c.enrich.dogstatsd_mapper_profiles[0].prefix, "*");
        assert_eq!(
            c.enrich.statsd_metric_namespace_blacklist.len(),
            crate::enrich::STANDARD_STATSD_PREFIXES.len()
        );
        assert_eq!(read("", &[]).unwrap().enrich, EnrichConfig::default());
    }

    #[test]
    fn mapper_profiles_of_another_shape_are_an_invalid_value_naming_the_key() {
        for (yaml, env) in [
            ("dogstatsd_mapper_profiles: {name: x}\n", vec![]),
            ("", vec![("DD_DOGSTATSD_MAPPER_PROFILES", "airflow")]),
        ] {
            let errors = invalid(yaml, &env);
            assert_eq!(errors[0].key, "dogstatsd_mapper_profiles");
            assert!(
                errors[0].expected.starts_with("a list of mapper profiles"),
                "{}",
                errors[0]
            );
        }
    }

    #[test]
    fn memory_bounds_count_each_listener_and_stay_exact_in_u64() {
        let c = DogStatsDConfig {
            dogstatsd_socket: Some("/tmp/s".into()),
            ..DogStatsDConfig::default()
        };
        let b = c.memory_bounds();
        assert_eq!(b.minimum, 2 * 8192 + (2 << 20));
        assert_eq!(b.firm, b.minimum + 1024 * 8192 * 6);
        let huge = DogStatsDConfig {
            dogstatsd_string_interner_size: 6 << 30,
            ..DogStatsDConfig::default()
        };
        assert_eq!(huge.memory_bounds().minimum, 8192 + (6 << 30), "above 4 GiB, exact");
    }
}
