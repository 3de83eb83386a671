use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::mapper::MetricMappingConfig;

fn enricher(config: EnrichConfig) -> Enricher {
    let (e, err) = Enricher::new(&config);
    assert_eq!(err, None);
    e
}

/// `Some((name, added tags, distribution name))`, or `None` when dropped.
fn run(e: &Enricher, name: &str, is_histogram: bool) -> Option<(String, Vec<String>, Option<String>)> {
    match e.metric(name, is_histogram) {
        MetricDecision::Keep(m) => Some((
            m.name().to_owned(),
            m.added_tags().map(str::to_owned).collect(),
            m.distribution_name().map(|d| d.into_owned()),
        )),
        MetricDecision::Drop(reason) => {
            assert_eq!(reason, DropReason::Blocklist);
            None
        }
    }
}

fn name_of(e: &Enricher, name: &str) -> Option<String> {
    run(e, name, false).map(|(n, _, _)| n)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn airflow_mapper() -> Vec<MappingProfileConfig> {
    vec![MappingProfileConfig {
        name: "legacy".to_owned(),
        prefix: "legacy.".to_owned(),
        mappings: vec![
            MetricMappingConfig {
                match_pattern: "legacy.airflow.*".to_owned(),
                name: "airflow.$1".to_owned(),
                ..Default::default()
            },
            MetricMappingConfig {
                match_pattern: "legacy.job.*.*".to_owned(),
                name: "job.$2".to_owned(),
                tags: [("type".to_owned(), "$1".to_owned())].into_iter().collect(),
                ..Default::default()
            },
        ],
    }]
}

#[test]
fn the_defaults_are_the_agents() {
    let c = EnrichConfig::default();
    assert_eq!(c.statsd_metric_namespace, "");
    assert_eq!(c.statsd_metric_namespace_blacklist, strings(&STANDARD_STATSD_PREFIXES));
    assert!(c.statsd_metric_blocklist.is_empty());
    assert!(!c.statsd_metric_blocklist_match_prefix);
    assert!(c.metric_filterlist.is_empty());
    assert!(!c.metric_filterlist_match_prefix);
    assert!(c.dogstatsd_tags.is_empty());
    assert!(!c.histogram_copy_to_distribution);
    assert_eq!(c.histogram_copy_to_distribution_prefix, "");
    assert!(c.dogstatsd_mapper_profiles.is_empty());
    assert_eq!(c.dogstatsd_mapper_cache_size, 1000);
    let parsed: EnrichConfig = serde_json::from_str("{}").expect("parses");
    assert_eq!(parsed, c);
}

#[test]
fn the_default_configuration_passes_metrics_through() {
    let e = enricher(EnrichConfig::default());
    assert!(e.is_passthrough());
    match e.metric("app.requests", true) {
        MetricDecision::Keep(m) => {
            assert_eq!(m.name(), "app.requests");
            assert!(!m.is_renamed());
            assert_eq!(m.added_tags().count(), 0);
            assert_eq!(m.distribution_name(), None);
        }
        MetricDecision::Drop(r) => panic!("dropped: {r:?}"),
    }
}

#[test]
fn the_configuration_parses_from_agent_key_names() {
    let c: EnrichConfig = serde_json::from_str(
        r#"{"statsd_metric_namespace":"app","statsd_metric_namespace_blacklist":["sys."],
            "statsd_metric_blocklist":["app.secret"],"statsd_metric_blocklist_match_prefix":true,
            "dogstatsd_tags":["env:prod"],"histogram_copy_to_distribution":true,
            "histogram_copy_to_distribution_prefix":"dist.","dogstatsd_mapper_cache_size":5,
            "dogstatsd_mapper_profiles":[{"name":"p","prefix":"p.","mappings":[{"match":"p.*","name":"q"}]}]}"#,
    )
    .expect("parses");
    assert_eq!(c.statsd_metric_namespace, "app");
    assert_eq!(c.statsd_metric_namespace_blacklist, strings(&["sys."]));
    assert!(c.statsd_metric_blocklist_match_prefix);
    assert_eq!(c.dogstatsd_mapper_cache_size, 5);
    let e = enricher(c);
    assert!(!e.is_passthrough());
    assert_eq!(
        run(&e, "p.x", true),
        Some((
            "app.q".to_owned(),
            strings(&["env:prod"]),
            Some("dist.app.q".to_owned())
        ))
    );
    assert_eq!(run(&e, "secret.x", false), None);
}

// Namespace.

#[test]
fn the_namespace_gets_a_dot_when_it_has_none() {
    let e = enricher(EnrichConfig {
        statsd_metric_namespace: "app".to_owned(),
        ..Default::default()
    });
    assert_eq!(e.namespace(), "app.");
    assert_eq!(name_of(&e, "requests").as_deref(), Some("app.requests"));

    let e = enricher(EnrichConfig {
        statsd_metric_namespace: "app.".to_owned(),
        ..Default::default()
    });
    assert_eq!(e.namespace(), "app.");
    assert_eq!(name_of(&e, "requests").as_deref(), Some("app.requests"));
}

#[test]
fn blacklisted_prefixes_are_not_namespaced_by_a_raw_string_test() {
    let e = enricher(EnrichConfig {
        statsd_metric_namespace: "app".to_owned(),
        ..Default::default()
    });
    assert_eq!(name_of(&e, "jvm.heap").as_deref(), Some("jvm.heap"));
    assert_eq!(
        name_of(&e, "datadog.agent.running").as_deref(),
        Some("datadog.agent.running")
    );
    // No dot boundary: "jvmstats" starts with "jvm", as in the Agent.
    assert_eq!(name_of(&e, "jvmstats.x").as_deref(), Some("jvmstats.x"));
    assert_eq!(name_of(&e, "java.heap").as_deref(), Some("app.java.heap"));
}

#[test]
fn an_empty_blacklist_namespaces_everything() {
    let e = enricher(EnrichConfig {
        statsd_metric_namespace: "app".to_owned(),
        statsd_metric_namespace_blacklist: Vec::new(),
        ..Default::default()
    });
    assert_eq!(name_of(&e, "jvm.heap").as_deref(), Some("app.jvm.heap"));
}

#[test]
fn the_blacklist_is_tested_on_the_mapped_name() {
    let e = enricher(EnrichConfig {
        statsd_metric_namespace: "app".to_owned(),
        dogstatsd_mapper_profiles: airflow_mapper(),
        ..Default::default()
    });
    // Mapped to airflow.* (blacklisted): not namespaced.
    assert_eq!(name_of(&e, "legacy.airflow.dagrun").as_deref(), Some("airflow.dagrun"));
    // Mapped to job.* : namespaced, mapper tag kept.
    assert_eq!(
        run(&e, "legacy.job.batch.duration", false),
        Some(("app.job.duration".to_owned(), strings(&["type:batch"]), None))
    );
}

// Blocklist.

#[test]
fn the_blocklist_is_tested_on_the_namespaced_name() {
    let e = enricher(EnrichConfig {
        statsd_metric_namespace: "app".to_owned(),
        statsd_metric_blocklist: strings(&["app.secret", "plain"]),
        ..Default::default()
    });
    assert_eq!(name_of(&e, "secret"), None);
    // "plain" becomes "app.plain", which is not blocked.
    assert_eq!(name_of(&e, "plain").as_deref(), Some("app.plain"));
    // Exact names only by default.
    assert_eq!(name_of(&e, "secret.sub").as_deref(), Some("app.secret.sub"));
}

#[test]
fn the_blocklist_may_match_prefixes() {
    let e = enricher(EnrichConfig {
        statsd_metric_blocklist: strings(&["debug.", "tmp"]),
        statsd_metric_blocklist_match_prefix: true,
        ..Default::default()
    });
    assert!(e.blocklist().match_prefix());
    assert_eq!(name_of(&e, "debug.x"), None);
    assert_eq!(name_of(&e, "tmpfiles"), None);
    assert_eq!(name_of(&e, "debugger").as_deref(), Some("debugger"));
}

#[test]
fn the_blocklist_applies_to_mapped_names() {
    let e = enricher(EnrichConfig {
        dogstatsd_mapper_profiles: airflow_mapper(),
        statsd_metric_blocklist: strings(&["job.duration"]),
        ..Default::default()
    });
    assert_eq!(name_of(&e, "legacy.job.batch.duration"), None);
    assert_eq!(name_of(&e, "legacy.job.batch.size").as_deref(), Some("job.size"));
}

#[test]
fn metric_filterlist_replaces_the_statsd_blocklist() {
    let e = enricher(EnrichConfig {
        statsd_metric_blocklist: strings(&["a"]),
        statsd_metric_blocklist_match_prefix: true,
        metric_filterlist: strings(&["b"]),
        ..Default::default()
    });
    assert!(!e.blocklist().match_prefix());
    assert_eq!(name_of(&e, "a.x").as_deref(), Some("a.x"));
    assert_eq!(name_of(&e, "b"), None);
    assert_eq!(name_of(&e, "b.x").as_deref(), Some("b.x"));

    let e = enricher(EnrichConfig {
        metric_filterlist: strings(&["b"]),
        metric_filterlist_match_prefix: true,
        ..Default::default()
    });
    assert_eq!(name_of(&e, "b.x"), None);
}

#[test]
fn blocklist_prefixes_covered_by_shorter_ones_are_merged() {
    let b = Blocklist::new(["a.b.c", "a.b", "a.bc", "z"], true);
    assert_eq!(b.len(), 2);
    assert!(b.contains("a.b"));
    assert!(b.contains("a.bcd"));
    assert!(b.contains("a.b.c.d"));
    assert!(!b.contains("a."));
    assert!(b.contains("zzz"));
    let exact = Blocklist::new(["x", "x", "y"], false);
    assert_eq!(exact.len(), 2);
    assert!(!exact.contains("xy"));
}

#[test]
fn an_empty_prefix_blocks_everything() {
    let b = Blocklist::new([""], true);
    assert!(b.contains("anything"));
    assert!(b.contains(""));
    let exact = Blocklist::new([""], false);
    assert!(!exact.contains("anything"));
}

// dogstatsd_tags.

#[test]
fn dogstatsd_tags_are_sorted_deduplicated_and_follow_mapper_tags() {
    let e = enricher(EnrichConfig {
        dogstatsd_tags: strings(&["team:b", "env:prod", "team:b"]),
        dogstatsd_mapper_profiles: airflow_mapper(),
        ..Default::default()
    });
    assert_eq!(e.dogstatsd_tags(), strings(&["env:prod", "team:b"]).as_slice());
    assert_eq!(
        run(&e, "legacy.job.batch.duration", false),
        Some((
            "job.duration".to_owned(),
            strings(&["type:batch", "env:prod", "team:b"]),
            None
        ))
    );
    assert_eq!(
        run(&e, "other", false),
        Some(("other".to_owned(), strings(&["env:prod", "team:b"]), None))
    );
    match e.metric("legacy.job.batch.duration", false) {
        MetricDecision::Keep(m) => {
            assert_eq!(m.mapper_tags(), strings(&["type:batch"]).as_slice());
            assert_eq!(m.dogstatsd_tags(), strings(&["env:prod", "team:b"]).as_slice());
            assert!(m.is_renamed());
        }
        MetricDecision::Drop(r) => panic!("dropped: {r:?}"),
    }
}

// Histogram copies.

#[test]
fn histograms_get_a_distribution_copy_of_the_namespaced_name() {
    let e = enricher(EnrichConfig {
        statsd_metric_namespace: "app".to_owned(),
        histogram_copy_to_distribution: true,
        histogram_copy_to_distribution_prefix: "dist.".to_owned(),
        dogstatsd_tags: strings(&["env:prod"]),
        ..Default::default()
    });
    assert_eq!(
        run(&e, "latency", true),
        Some((
            "app.latency".to_owned(),
            strings(&["env:prod"]),
            Some("dist.app.latency".to_owned())
        ))
    );
    assert_eq!(
        run(&e, "count", false),
        Some(("app.count".to_owned(), strings(&["env:prod"]), None))
    );
}

#[test]
fn without_a_prefix_the_copy_has_the_same_name() {
    let e = enricher(EnrichConfig {
        histogram_copy_to_distribution: true,
        ..Default::default()
    });
    assert_eq!(
        run(&e, "latency", true),
        Some(("latency".to_owned(), vec![], Some("latency".to_owned())))
    );
}

#[test]
fn the_prefix_alone_does_not_enable_copies() {
    let e = enricher(EnrichConfig {
        histogram_copy_to_distribution_prefix: "dist.".to_owned(),
        ..Default::default()
    });
    assert_eq!(run(&e, "latency", true), Some(("latency".to_owned(), vec![], None)));
}

#[test]
fn copies_are_not_checked_against_the_blocklist_but_blocked_histograms_have_none() {
    let e = enricher(EnrichConfig {
        histogram_copy_to_distribution: true,
        histogram_copy_to_distribution_prefix: "dist.".to_owned(),
        statsd_metric_blocklist: strings(&["dist.latency", "blocked"]),
        ..Default::default()
    });
    assert_eq!(
        run(&e, "latency", true),
        Some(("latency".to_owned(), vec![], Some("dist.latency".to_owned())))
    );
    assert_eq!(run(&e, "blocked", true), None);
}

// The mapper inside the enricher.

#[test]
fn an_invalid_mapper_is_reported_and_the_rest_still_applies() {
    let mut profiles = airflow_mapper();
    profiles[0].prefix.clear();
    let (e, err) = Enricher::new(&EnrichConfig {
        dogstatsd_mapper_profiles: profiles,
        statsd_metric_namespace: "app".to_owned(),
        ..Default::default()
    });
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("missing prefix for profile: legacy")
    );
    assert!(e.mapper().is_none());
    assert_eq!(name_of(&e, "legacy.airflow.x").as_deref(), Some("app.legacy.airflow.x"));
}

#[test]
fn a_zero_cache_size_disables_the_mapper() {
    let (e, err) = Enricher::new(&EnrichConfig {
        dogstatsd_mapper_profiles: airflow_mapper(),
        dogstatsd_mapper_cache_size: 0,
        ..Default::default()
    });
    assert_eq!(err, Some(MapperError::CacheSize { size: 0 }));
    assert!(e.mapper().is_none());
}

#[test]
fn clones_share_the_mapper_cache() {
    let e = enricher(EnrichConfig {
        dogstatsd_mapper_profiles: airflow_mapper(),
        ..Default::default()
    });
    let other = e.clone();
    assert_eq!(name_of(&e, "legacy.airflow.a").as_deref(), Some("airflow.a"));
    let (a, b) = (e.mapper().expect("mapper"), other.mapper().expect("mapper"));
    assert!(Arc::ptr_eq(a, b));
    assert_eq!(b.cache_len(), 1);
}

// Properties.

fn word() -> impl Strategy<Value = String> {
    "[ab.]{0,5}"
}

proptest! {
    #[test]
    fn property_test_blocklist_matches_a_linear_scan(
        entries in proptest::collection::vec(word(), 0..8),
        match_prefix in any::<bool>(),
        names in proptest::collection::vec(word(), 1..20),
    ) {
        let b = Blocklist::new(entries.iter().cloned(), match_prefix);
        for name in &names {
            let expected = entries.iter().any(|e| if match_prefix { name.starts_with(e.as_str()) } else { e == name });
            prop_assert_eq!(b.contains(name), expected, "entries {:?} name {:?}", entries, name);
        }
    }

    #[test]
    fn property_test_namespace_then_blocklist_in_the_agents_order(
        namespace in "[ab]{0,2}\\.?",
        blacklist in proptest::collection::vec("[ab]{0,3}", 0..3),
        blocklist in proptest::collection::vec("[ab.]{0,6}", 0..4),
        match_prefix in any::<bool>(),
        tags in proptest::collection::vec("[xy]:[12]", 0..4),
        copy in any::<bool>(),
        names in proptest::collection::vec("[ab.]{1,5}", 1..12),
    ) {
        let e = enricher(EnrichConfig {
            statsd_metric_namespace: namespace.clone(),
            statsd_metric_namespace_blacklist: blacklist.clone(),
            statsd_metric_blocklist: blocklist.clone(),
            statsd_metric_blocklist_match_prefix: match_prefix,
            dogstatsd_tags: tags.clone(),
            histogram_copy_to_distribution: copy,
            histogram_copy_to_distribution_prefix: "d.".to_owned(),
            ..Default::default()
        });
        let mut sorted_tags = tags.clone();
        sorted_tags.sort();
        sorted_tags.dedup();
        for name in &names {
            // The Agent's steps, written out naively.
            let mut prefix = namespace.clone();
            if !prefix.is_empty() && !prefix.ends_with('.') {
                prefix.push('.');
            }
            let excluded = !prefix.is_empty() && blacklist.iter().any(|b| name.starts_with(b.as_str()));
            let final_name = if prefix.is_empty() || excluded { name.clone() } else { format!("{prefix}{name}") };
            let blocked = blocklist.iter().any(|b| if match_prefix { final_name.starts_with(b.as_str()) } else { *b == final_name });
            let expected = (!blocked).then(|| (final_name.clone(), sorted_tags.clone(), copy.then(|| format!("d.{final_name}"))));
            prop_assert_eq!(run(&e, name, true), expected, "name {:?}", name);
        }
    }
}

#[test]
fn the_histogram_subset_keeps_entries_ending_with_an_aggregate_suffix() {
    let suffixes = [".max", ".avg", ".95percentile"];
    let exact = Blocklist::new(["a.max", "a", "b.95percentile", "c.maximum", "d.avg.x"], false);
    let subset = exact.histogram_aggregates(suffixes);
    assert_eq!(subset.len(), 2);
    assert!(subset.contains("a.max") && subset.contains("b.95percentile"));
    assert!(!subset.contains("a") && !subset.contains("c.maximum") && !subset.contains("d.avg.x"));
    let prefixes = Blocklist::new(["x.avg"], true).histogram_aggregates(suffixes);
    assert!(prefixes.match_prefix() && prefixes.contains("x.avg"));
    assert!(Blocklist::new(["x"], false).histogram_aggregates(suffixes).is_empty());
}
