//! The board as a host in Datadog: the Datadog Agent's hostname resolution,
//! its host tags and its v5 host-metadata payload, for an agent that runs
//! without the Core Agent beside it.
//!
//! # Hostname
//!
//! [`resolve`] follows the Agent's provider chain without the cloud ones:
//! `hostname` → `hostname_file` (trimmed) → the FQDN when `hostname_fqdn` →
//! the OS hostname, with the Agent's validation ([`validate`]: non-empty, not
//! `localhost`-like, ≤ 255 bytes, RFC 1123) and log lines (`Hostname is: …`,
//! the `hostname_fqdn` deprecation notice). When the name comes from the
//! system and is a default many boards share (`raspberrypi`, `debian`,
//! `nixos`, … — [`SHARED_DEFAULT_HOSTNAMES`]), it logs a WARN telling the user
//! to set `hostname`, since those boards would merge into one host.
//!
//! # Host tags
//!
//! [`host_tags`] builds the Agent's `system` host tags from `tags`,
//! `extra_tags` and `env`; [`ExpectedHostTags`] answers which of them to add
//! to every metric while `expected_tags_duration` lasts.
//!
//! # Host metadata
//!
//! [`HostMetadata::payload`] builds the JSON the Agent POSTs to `/intake/`
//! (see [`metadata`] for its quirks, kept on purpose); [`MetadataSchedule`]
//! gives the Agent's schedule: at start, then 5, 15 and every 30 minutes.
//! Sending it is the forwarder's job: `Content-Type: application/json`,
//! compressed like the other payloads, never stored on disk.
//!
//! # Configuration
//!
//! [`HostSettings::read`] declares and reads this crate's keys through the
//! shared reader (`adp-config`): `hostname`, `hostname_file`,
//! `hostname_fqdn`, `hostname_trust_uts_namespace`,
//! `hostname_force_config_as_canonical`, `tags` (`DD_TAGS`, space-separated),
//! `extra_tags`, `env`, `tag_value_split_separator`, `host_aliases`,
//! `expected_tags_duration` (a Go duration, as the Agent reads it: a bare
//! number is nanoseconds, warned about), `enable_metadata_collection` and
//! `metadata_providers` (its `host` entry). The binary resolves the hostname
//! at start, gives it to the encoder, and sends the payload from a
//! supervised task.
//!
//! # Missing
//!
//! - Cloud and container providers (GCE, Azure, EC2, Fargate, Docker,
//!   Kubernetes) for the hostname, the host tags (`collect_ec2_tags`,
//!   `collect_gce_tags`), `meta.host_aliases` and `network`: a board has no
//!   metadata server, and a cloud VM should run the Agent.
//! - The EC2 default-hostname check behind the Agent's "defined in
//!   configuration will not be used as the in-app hostname" warning.
//! - `gohai` carries `cpu`, `memory` and `platform` only (no `filesystem`,
//!   `network`, `processes`), and no `resources` payload is sent.
//! - `meta.socket-fqdn` is the `getaddrinfo` canonical name, where the Agent
//!   does a forward then a reverse lookup.
//! - `agent-flavor` is `agent-data-plane` (the name Saluki's ADP registers
//!   under), not a flavor the Agent itself sends.
//! - `no_proxy_nonexact_match` is not read: `proxy-info` reports the Agent's
//!   defaults although the forwarder always matches `no_proxy` non-exactly.
#![deny(missing_docs)]

pub mod hostname;
pub mod metadata;
pub mod settings;
pub mod tags;

pub use hostname::{
    is_shared_default, resolve, resolve_with, shared_default_warning, validate, HostnameConfig, HostnameError,
    HostnameSources, InvalidHostname, Provider, ResolvedHostname, SystemSources, SHARED_DEFAULT_HOSTNAMES,
};
pub use metadata::{
    collection_interval, HostMetadata, HostMetadataConfig, InstallMethod, MetadataSchedule, Payload, SystemInfo,
    SystemPaths,
};
pub use settings::{HostSettings, MetadataProvider, AGENT_FLAVOR};
pub use tags::{expected_tags_active, host_tags, ExpectedHostTags, HostTagsConfig};
