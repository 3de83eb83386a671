use std::sync::Arc;

use proptest::prelude::*;

use super::*;

fn mapping(pattern: &str, name: &str, tags: &[(&str, &str)]) -> MetricMappingConfig {
    MetricMappingConfig {
        match_pattern: pattern.to_owned(),
        match_type: String::new(),
        name: name.to_owned(),
        tags: tags.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect(),
    }
}

fn regex_mapping(pattern: &str, name: &str, tags: &[(&str, &str)]) -> MetricMappingConfig {
    MetricMappingConfig {
        match_type: "regex".to_owned(),
        ..mapping(pattern, name, tags)
    }
}

fn profile(name: &str, prefix: &str, mappings: Vec<MetricMappingConfig>) -> MappingProfileConfig {
    MappingProfileConfig {
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        mappings,
    }
}

/// The profile "test", for the names under `test.`.
fn test_profile(mappings: Vec<MetricMappingConfig>) -> MappingProfileConfig {
    profile("test", "test.", mappings)
}

fn mapper(profiles: Vec<MappingProfileConfig>) -> Mapper {
    Mapper::new(&profiles, DEFAULT_MAPPER_CACHE_SIZE).expect("valid profiles")
}

/// `(name, sorted tags)` or `None`.
fn map(m: &Mapper, name: &str) -> Option<(String, Vec<String>)> {
    m.map(name).map(|r| {
        let mut tags = r.tags.clone();
        tags.sort();
        (r.name.clone(), tags)
    })
}

fn mapped(name: &str, tags: &[&str]) -> Option<(String, Vec<String>)> {
    let mut tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tags.sort();
    Some((name.to_owned(), tags))
}

fn error(profiles: Vec<MappingProfileConfig>) -> String {
    Mapper::new(&profiles, DEFAULT_MAPPER_CACHE_SIZE)
        .expect_err("invalid profiles")
        .to_string()
}

/// The scenarios of the Agent's mapper_test.go (TestMappings) that only map
/// names, as its table.
#[test]
fn the_agent_mapping_scenarios_map_as_it_does() {
    /// A name and what it maps to.
    type Case = (&'static str, Option<(&'static str, &'static [&'static str])>);
    let scenarios: Vec<(&str, Vec<MappingProfileConfig>, Vec<Case>)> = vec![
        (
            "wildcard stars become tags",
            vec![test_profile(vec![
                mapping(
                    "test.job.duration.*.*",
                    "test.job.duration",
                    &[("job_type", "$1"), ("job_name", "$2")],
                ),
                mapping("test.job.size.*.*", "test.job.size", &[("foo", "$1"), ("bar", "$2")]),
            ])],
            vec![
                (
                    "test.job.duration.my_job_type.my_job_name",
                    Some(("test.job.duration", &["job_type:my_job_type", "job_name:my_job_name"])),
                ),
                (
                    "test.job.size.my_job_type.my_job_name",
                    Some(("test.job.size", &["foo:my_job_type", "bar:my_job_name"])),
                ),
                ("test.job.size.not_match", None),
            ],
        ),
        (
            "captures may be left unused",
            vec![test_profile(vec![
                mapping("test.job.duration.*.*", "test.job.duration", &[("job_type", "$1")]),
                mapping("test.task.duration.*.*", "test.task.duration", &[]),
            ])],
            vec![
                (
                    "test.job.duration.my_job_type.my_job_name",
                    Some(("test.job.duration", &["job_type:my_job_type"])),
                ),
                (
                    "test.task.duration.my_job_type.my_job_name",
                    Some(("test.task.duration", &[])),
                ),
            ],
        ),
        (
            "braced references may be followed by word characters",
            vec![test_profile(vec![mapping(
                "test.job.duration.*.*",
                "test.job.duration",
                &[("job_type", "${1}_x"), ("job_name", "${2}_y")],
            )])],
            vec![(
                "test.job.duration.my_job_type.my_job_name",
                Some((
                    "test.job.duration",
                    &["job_type:my_job_type_x", "job_name:my_job_name_y"],
                )),
            )],
        ),
        // `$1_x` is the group named "1_x": nothing (Go's rule, kept).
        (
            "unbraced references followed by word characters are empty",
            vec![test_profile(vec![mapping("test.*", "test.$1_x", &[("t", "$1_x")])])],
            vec![("test.a", Some(("test.", &["t:"])))],
        ),
        (
            "the name is expanded too",
            vec![test_profile(vec![mapping(
                "test.job.duration.*.*",
                "test.hello.$2.$1",
                &[("job_type", "$1"), ("job_name", "$2")],
            )])],
            vec![(
                "test.job.duration.my_job_type.my_job_name",
                Some((
                    "test.hello.my_job_name.my_job_type",
                    &["job_type:my_job_type", "job_name:my_job_name"],
                )),
            )],
        ),
        (
            "a star may end before an underscore",
            vec![test_profile(vec![mapping(
                "test.*_start",
                "test.start",
                &[("job", "$1")],
            )])],
            vec![("test.my_job_start", Some(("test.start", &["job:my_job"])))],
        ),
        (
            "mappings without tags rename only",
            vec![test_profile(vec![
                mapping("test.my-worker.start", "test.worker.start", &[]),
                mapping("test.my-worker.stop.*", "test.worker.stop", &[]),
            ])],
            vec![
                ("test.my-worker.start", Some(("test.worker.start", &[]))),
                ("test.my-worker.stop.worker-name", Some(("test.worker.stop", &[]))),
            ],
        ),
        (
            "every allowed wildcard character matches itself",
            vec![test_profile(vec![mapping(
                "test.abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ-01234567.*",
                "test.alphabet",
                &[],
            )])],
            vec![(
                "test.abcdefghijklmnopqrstuvwxyz_ABCDEFGHIJKLMNOPQRSTUVWXYZ-01234567.123",
                Some(("test.alphabet", &[])),
            )],
        ),
        (
            "regex mappings capture anything they describe",
            vec![test_profile(vec![
                regex_mapping(r"test\.job\.duration\.(.*)", "test.job.duration", &[("job_name", "$1")]),
                regex_mapping(
                    r"test\.task\.duration\.(.*)",
                    "test.task.duration",
                    &[("task_name", "$1")],
                ),
            ])],
            vec![
                (
                    "test.job.duration.my.funky.job$name-abc/123",
                    Some(("test.job.duration", &["job_name:my.funky.job$name-abc/123"])),
                ),
                (
                    "test.task.duration.MY_task_name",
                    Some(("test.task.duration", &["task_name:MY_task_name"])),
                ),
            ],
        ),
        (
            "regex classes and perl escapes work",
            vec![test_profile(vec![regex_mapping(
                r"test\.job\.([a-z][0-9]-\w+)\.(.*)",
                "test.job",
                &[("job_type", "$1"), ("job_name", "$2")],
            )])],
            vec![
                (
                    "test.job.a5-foo.bar",
                    Some(("test.job", &["job_type:a5-foo", "job_name:bar"])),
                ),
                ("test.job.foo.bar-not-match", None),
            ],
        ),
        (
            "only the profile of the prefix is tried",
            vec![
                profile(
                    "test",
                    "foo.",
                    vec![mapping("foo.duration.*", "foo.duration", &[("name", "$1")])],
                ),
                profile(
                    "test",
                    "bar.",
                    vec![
                        mapping("bar.count.*", "bar.count", &[("name", "$1")]),
                        // Never reached: foo.* names go to the first profile.
                        mapping("foo.duration2.*", "foo.duration2", &[("name", "$1")]),
                    ],
                ),
            ],
            vec![
                ("foo.duration.foo_name1", Some(("foo.duration", &["name:foo_name1"]))),
                ("foo.duration2.foo_name1", None),
                ("bar.count.bar_name1", Some(("bar.count", &["name:bar_name1"]))),
                ("z.not.mapped", None),
            ],
        ),
        (
            "a star prefix takes every name",
            vec![profile(
                "test",
                "*",
                vec![mapping("foo.duration.*", "foo.duration", &[("name", "$1")])],
            )],
            vec![("foo.duration.foo_name1", Some(("foo.duration", &["name:foo_name1"])))],
        ),
        (
            "the first of two star profiles wins",
            vec![
                profile(
                    "test",
                    "*",
                    vec![mapping("foo.duration.*", "foo.duration", &[("name1", "$1")])],
                ),
                profile(
                    "test",
                    "*",
                    vec![mapping("foo.duration.*", "foo.duration", &[("name2", "$1")])],
                ),
            ],
            vec![("foo.duration.foo_name", Some(("foo.duration", &["name1:foo_name"])))],
        ),
        (
            "a shorter prefix listed first shadows a longer one",
            vec![
                profile(
                    "test",
                    "foo.",
                    vec![mapping(
                        "foo.*.duration.*",
                        "foo.bar1.duration",
                        &[("bar", "$1"), ("foo", "$2")],
                    )],
                ),
                profile(
                    "test",
                    "foo.bar.",
                    vec![mapping("foo.bar.duration.*", "foo.bar2.duration", &[("foo_bar", "$1")])],
                ),
            ],
            vec![(
                "foo.bar.duration.foo_name",
                Some(("foo.bar1.duration", &["bar:bar", "foo:foo_name"])),
            )],
        ),
        // Saluki would map this with the second profile; the Agent does not.
        (
            "a name the first profile misses is not tried by later ones",
            vec![
                profile("first", "app.", vec![mapping("app.requests.*", "app.requests", &[])]),
                profile(
                    "second",
                    "app.",
                    vec![mapping("app.errors.*", "app.errors", &[("code", "$1")])],
                ),
            ],
            vec![("app.errors.500", None)],
        ),
        (
            "the first matching mapping wins",
            vec![profile(
                "p",
                "a.",
                vec![mapping("a.*.c", "first", &[]), mapping("a.b.*", "second", &[])],
            )],
            vec![("a.b.c", Some(("first", &[]))), ("a.b.d", Some(("second", &[])))],
        ),
        // The Agent compiles "^" + match + "$": `first|second` is `^first|second$`,
        // so any name *starting* with "first" (or ending with "second") matches.
        (
            "a regex alternation is not anchored as a whole",
            vec![profile("p", "*", vec![regex_mapping(r"first|second", "alt.$0", &[])])],
            vec![
                ("first.anything", Some(("alt.first", &[]))),
                ("x.second", Some(("alt.second", &[]))),
                ("x.second.y", None),
            ],
        ),
        (
            "named regex groups expand by name",
            vec![profile(
                "p",
                "svc.",
                vec![regex_mapping(
                    r"svc\.(?P<service>[a-z]+)\.(?<endpoint>\w+)\.latency",
                    "svc.latency",
                    &[
                        ("service", "${service}"),
                        ("endpoint", "$endpoint"),
                        ("both", "${service}-$2"),
                    ],
                )],
            )],
            vec![(
                "svc.checkout.pay_now.latency",
                Some((
                    "svc.latency",
                    &["service:checkout", "endpoint:pay_now", "both:checkout-pay_now"],
                )),
            )],
        ),
        (
            "optional regex groups that did not match expand to nothing",
            vec![profile(
                "p",
                "q.",
                vec![regex_mapping(
                    r"q\.(\d+)(?:\.(x))?",
                    "q.n",
                    &[("n", "$1"), ("x", "[$2]")],
                )],
            )],
            vec![
                ("q.42", Some(("q.n", &["n:42", "x:[]"]))),
                ("q.42.x", Some(("q.n", &["n:42", "x:[x]"]))),
            ],
        ),
        (
            "regex flags are honoured",
            vec![profile(
                "p",
                "*",
                vec![regex_mapping(
                    r"(?i)http\.(GET|POST)",
                    "http.requests",
                    &[("method", "$1")],
                )],
            )],
            vec![("HTTP.get", Some(("http.requests", &["method:get"])))],
        ),
        (
            "tag values keep dollar signs written twice",
            vec![profile(
                "p",
                "price.",
                vec![mapping("price.*", "price", &[("currency", "$$$1")])],
            )],
            vec![("price.usd", Some(("price", &["currency:$usd"])))],
        ),
        (
            "a profile without mappings maps nothing",
            vec![profile("empty", "a.", vec![])],
            vec![("a.b", None)],
        ),
    ];
    for (scenario, profiles, cases) in scenarios {
        let m = mapper(profiles);
        for (name, expected) in cases {
            let expected = expected.and_then(|(n, tags)| mapped(n, tags));
            assert_eq!(map(&m, name), expected, "{scenario}: {name}");
        }
    }
}

// The other scenarios of the Agent's mapper_test.go (TestMappings), one test each.

#[test]
fn tags_are_sorted_by_key() {
    let m = mapper(vec![profile(
        "p",
        "a.",
        vec![mapping("a.*.*", "a", &[("zeta", "$1"), ("alpha", "$2"), ("mid", "x")])],
    )]);
    let r = m.map("a.1.2").expect("mapped");
    assert_eq!(r.tags, vec!["alpha:2", "mid:x", "zeta:1"]);
}

// Validation: each message is the Agent's.

#[test]
fn a_profile_without_a_name_is_refused() {
    assert_eq!(
        error(vec![profile("ok", "a.", vec![]), profile("", "b.", vec![])]),
        "missing profile name 1"
    );
}

#[test]
fn a_profile_without_a_prefix_is_refused() {
    assert_eq!(
        error(vec![profile("test", "", vec![])]),
        "missing prefix for profile: test"
    );
}

#[test]
fn an_unknown_match_type_is_refused() {
    let mut bad = mapping("test.invalid.duration", "test.job.duration", &[]);
    bad.match_type = "invalid".to_owned();
    assert_eq!(
        error(vec![profile("test", "test.", vec![mapping("a", "b", &[]), bad])]),
        "profile: test, mapping num 1: invalid match type, must be `wildcard` or `regex`"
    );
    // Case matters, as in Go.
    let mut upper = mapping("a", "b", &[]);
    upper.match_type = "Regex".to_owned();
    assert!(error(vec![profile("test", "test.", vec![upper])]).contains("invalid match type"));
}

#[test]
fn the_match_type_is_checked_before_the_name_and_match() {
    let mut bad = mapping("", "", &[]);
    bad.match_type = "glob".to_owned();
    assert!(error(vec![profile("p", "p.", vec![bad])]).contains("invalid match type"));
}

#[test]
fn a_mapping_without_a_name_is_refused() {
    assert_eq!(
        error(vec![profile(
            "test",
            "test.",
            vec![mapping("test.job.duration.*.*", "", &[("job_type", "$1")])]
        )]),
        "profile: test, mapping num 0: name is required"
    );
}

#[test]
fn a_mapping_without_a_match_is_refused() {
    assert_eq!(
        error(vec![profile(
            "test",
            "test.",
            vec![mapping("", "test.job.duration", &[])]
        )]),
        "profile: test, mapping num 0: match is required"
    );
}

#[test]
fn wildcard_patterns_with_other_characters_are_refused() {
    assert_eq!(
        error(vec![profile(
            "test",
            "test.",
            vec![mapping("test.[]duration.*.*", "test.job.duration", &[])]
        )]),
        r"invalid wildcard match pattern `test.[]duration.*.*`, it does not match allowed match regex `^[a-zA-Z0-9\-_*.]+$`"
    );
    assert!(error(vec![profile(
        "test",
        "test.",
        vec![mapping("^test.invalid.duration.*.*", "n", &[])]
    )])
    .contains("it does not match allowed match regex"));
}

#[test]
fn wildcard_patterns_with_consecutive_stars_are_refused() {
    assert_eq!(
        error(vec![profile(
            "test",
            "test.",
            vec![mapping("test.invalid.duration.**", "test.job.duration", &[])]
        )]),
        "invalid wildcard match pattern `test.invalid.duration.**`, it should not contain consecutive `*`"
    );
}

#[test]
fn regexes_that_do_not_compile_are_refused() {
    let message = error(vec![profile("p", "p.", vec![regex_mapping("p.(unclosed", "n", &[])])]);
    assert!(
        message.starts_with("invalid match `p.(unclosed`. cannot compile regex: "),
        "{message}"
    );
}

#[test]
fn unicode_classes_are_refused_by_regex_lite() {
    let message = error(vec![profile("p", "p.", vec![regex_mapping(r"p\.(\pL+)", "n", &[])])]);
    assert!(
        message.starts_with(r"invalid match `p\.(\pL+)`. cannot compile regex: "),
        "{message}"
    );
}

#[test]
fn go_quoting_is_refused_by_regex_lite() {
    let message = error(vec![profile("p", "p.", vec![regex_mapping(r"\Qa.b\E", "n", &[])])]);
    assert!(message.contains("cannot compile regex"), "{message}");
}

#[test]
fn a_cache_size_below_one_is_refused() {
    let profiles = vec![profile("p", "p.", vec![mapping("p.*", "n", &[])])];
    for size in [0, -1, i64::MIN] {
        let err = Mapper::new(&profiles, size).expect_err("refused");
        assert_eq!(err, MapperError::CacheSize { size });
        assert_eq!(err.to_string(), "must provide a positive size");
    }
}

#[test]
fn a_huge_cache_size_is_accepted_on_every_platform() {
    let profiles = vec![profile("p", "p.", vec![mapping("p.*", "n", &[])])];
    let m = Mapper::new(&profiles, i64::MAX).expect("accepted");
    assert_eq!(map(&m, "p.x"), mapped("n", &[]));
}

#[test]
fn profile_errors_come_before_the_cache_size() {
    let err = Mapper::new(&[profile("", "p.", vec![])], 0).expect_err("refused");
    assert_eq!(err, MapperError::MissingProfileName { index: 0 });
}

// The cache.

#[test]
fn hits_and_misses_are_cached_by_original_name() {
    let m = mapper(vec![profile(
        "p",
        "p.",
        vec![mapping("p.*.x", "mapped", &[("a", "$1")])],
    )]);
    let first = m.map("p.1.x").expect("mapped");
    let again = m.map("p.1.x").expect("mapped");
    assert!(Arc::ptr_eq(&first, &again), "a hit returns the cached result");
    assert_eq!(m.map("p.nomatch"), None);
    assert_eq!(m.map("p.nomatch"), None);
    assert_eq!(m.cache_len(), 2, "one hit and one miss");
}

#[test]
fn names_outside_every_prefix_are_not_cached() {
    let m = mapper(vec![profile("p", "p.", vec![mapping("p.*", "mapped", &[])])]);
    assert_eq!(m.map("other.name"), None);
    assert_eq!(m.cache_len(), 0);
}

#[test]
fn the_cache_is_bounded() {
    let profiles = vec![profile("p", "p.", vec![mapping("p.*", "mapped.$1", &[])])];
    let m = Mapper::new(&profiles, 3).expect("valid");
    for i in 0..10 {
        assert_eq!(map(&m, &format!("p.{i}")), mapped(&format!("mapped.{i}"), &[]));
    }
    assert_eq!(m.cache_len(), 3);
    // Evicted names are mapped again, identically.
    assert_eq!(map(&m, "p.0"), mapped("mapped.0", &[]));
}

#[test]
fn the_mapper_is_shared_across_threads() {
    let m = Arc::new(mapper(vec![profile(
        "p",
        "p.",
        vec![mapping("p.*.*", "p.$1", &[("k", "$2")])],
    )]));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..200 {
                    let name = format!("p.{}.{}", i % 17, t);
                    let r = m.map(&name).expect("mapped");
                    assert_eq!(r.name, format!("p.{}", i % 17));
                    assert_eq!(r.tags, vec![format!("k:{t}")]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(m.cache_len(), 17 * 4);
}

// The configuration as JSON (the `DD_DOGSTATSD_MAPPER_PROFILES` form).

#[test]
fn profiles_parse_from_the_environment_json_form() {
    let json = r#"[{"name":"airflow","prefix":"airflow.","mappings":[
        {"match":"airflow.job.duration_sec.*.*","name":"airflow.job.duration","tags":{"job_type":"$1","job_name":"$2"}},
        {"match":"airflow\\.pool\\.(\\w+)","match_type":"regex","name":"airflow.pool","tags":{"pool":"$1"}}
    ]}]"#;
    let profiles: Vec<MappingProfileConfig> = serde_json::from_str(json).expect("parses");
    assert_eq!(profiles[0].mappings[1].match_type, "regex");
    let m = Mapper::new(&profiles, DEFAULT_MAPPER_CACHE_SIZE).expect("valid");
    assert_eq!(
        map(&m, "airflow.job.duration_sec.backfill.daily"),
        mapped("airflow.job.duration", &["job_type:backfill", "job_name:daily"])
    );
    assert_eq!(
        map(&m, "airflow.pool.default"),
        mapped("airflow.pool", &["pool:default"])
    );
}

#[test]
fn missing_fields_parse_and_are_reported_by_validation() {
    let profiles: Vec<MappingProfileConfig> =
        serde_json::from_str(r#"[{"name":"test","prefix":"test.","mappings":[{"match":"test.*"}]}]"#).expect("parses");
    assert_eq!(
        Mapper::new(&profiles, DEFAULT_MAPPER_CACHE_SIZE)
            .expect_err("refused")
            .to_string(),
        "profile: test, mapping num 0: name is required"
    );
    let profiles: Vec<MappingProfileConfig> = serde_json::from_str(r#"[{"prefix":"test."}]"#).expect("parses");
    assert_eq!(
        Mapper::new(&profiles, DEFAULT_MAPPER_CACHE_SIZE)
            .expect_err("refused")
            .to_string(),
        "missing profile name 0"
    );
}

// Properties.

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("_"), Just("."), Just("-")].prop_map(str::to_owned)
}

fn wildcard_pattern() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![segment(), Just("*".to_owned())], 1..8)
        .prop_map(|parts| parts.concat())
        .prop_filter("no consecutive stars", |p| !p.contains("**"))
}

proptest! {
    #[test]
    fn property_test_wildcard_and_its_regex_translation_map_alike(
        pattern in wildcard_pattern(),
        names in proptest::collection::vec(proptest::collection::vec(segment(), 0..10).prop_map(|p| p.concat()), 1..12),
    ) {
        // The same mapping as a wildcard and as the regex the Agent compiles
        // for it (minus the anchors, which the regex type adds) maps alike.
        let stars = pattern.matches('*').count();
        let tags: Vec<(String, String)> = (1..=stars).map(|i| (format!("t{i}"), format!("${{{i}}}!"))).collect();
        let tag_refs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let translated = Wildcard::new(&pattern).unwrap().agent_regex();
        let inner = &translated[1..translated.len() - 1];
        let wild = mapper(vec![profile("w", "*", vec![mapping(&pattern, "n.$0", &tag_refs)])]);
        let re = mapper(vec![profile("r", "*", vec![regex_mapping(inner, "n.$0", &tag_refs)])]);
        for name in &names {
            prop_assert_eq!(map(&wild, name), map(&re, name), "pattern {:?} name {:?}", pattern, name);
        }
    }

    #[test]
    fn property_test_cached_results_equal_fresh_ones(
        names in proptest::collection::vec("[ab]\\.[ab._]{0,6}", 1..40),
    ) {
        // A cache of 2 forces evictions; results never depend on the cache.
        let profiles = vec![profile("p", "a.", vec![mapping("a.*.*", "m.$2", &[("first", "$1")])])];
        let small = Mapper::new(&profiles, 2).unwrap();
        for name in &names {
            let fresh = Mapper::new(&profiles, 1000).unwrap();
            prop_assert_eq!(map(&small, name), map(&fresh, name), "name {:?}", name);
            prop_assert!(small.cache_len() <= 2);
        }
    }
}
