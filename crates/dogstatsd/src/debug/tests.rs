use adp_model::{context_key, MetricKind};
use stringtheory::MetaString;

use super::*;

fn ctx(name: &str, tags: &[&str]) -> Context {
    let mut sorted: Vec<&str> = tags.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    Context::from_parts(
        context_key(name, sorted.iter().copied()),
        MetaString::from(name),
        sorted.iter().map(|t| MetaString::from(*t)).collect(),
    )
}

/// A batch of one count sample of `context`.
fn sample(context: &Context) -> MetricBatch {
    samples(&[context])
}

/// A batch of one count sample of each context.
fn samples(contexts: &[&Context]) -> MetricBatch {
    let mut batch = MetricBatch::new();
    for context in contexts {
        let tags: Vec<&str> = context.tags().iter().map(|t| t.as_str()).collect();
        let c = batch.add_context(context.name(), &tags.join(","), std::iter::empty());
        batch.push_number(c, MetricKind::Count, 1.0, 1.0, None);
    }
    batch
}

const HEADING: &str = "   Contexts\tMetric name\t(number of unique values for each tag)\n";

#[test]
fn a_collection_counts_samples_per_context_with_the_last_arrival() {
    let a = ctx("a", &["env:prod"]);
    let b = ctx("b", &[]);
    let mut c = StatsCollector::new(10);
    c.record(&sample(&a), 100);
    c.record(&sample(&b), 101);
    c.record(&sample(&a), 105);
    let report = c.finish();
    assert_eq!(
        report.stats,
        [
            MetricStat {
                name: "a".into(),
                tags: vec!["env:prod".into()],
                count: 2,
                last_seen: 105
            },
            MetricStat {
                name: "b".into(),
                tags: vec![],
                count: 1,
                last_seen: 101
            },
        ]
    );
    assert_eq!(report.untracked, 0);
}

#[test]
fn a_collection_beyond_its_limit_counts_what_it_does_not_track() {
    let mut c = StatsCollector::new(2);
    for name in ["a", "b", "c", "a", "d"] {
        c.record(&sample(&ctx(name, &[])), 1);
    }
    let report = c.finish();
    assert_eq!(report.stats.len(), 2);
    assert_eq!(report.stats[0].count, 2, "a known context still counts");
    assert_eq!(report.untracked, 2);
}

#[test]
fn the_context_report_counts_contexts_and_distinct_tag_values_per_name() {
    let contexts = [
        ctx("req", &["env:prod", "route:/a"]),
        ctx("req", &["env:prod", "route:/b"]),
        ctx("req", &["env:dev", "route:/b", "bare"]),
        // Listed twice (two metric types in the aggregator): counted once.
        ctx("req", &["env:dev", "route:/b", "bare"]),
        ctx("img", &["image:repo:v1", "image:repo:v2"]),
    ];
    let report = ContextReport::from_contexts(&contexts);
    assert_eq!(
        report.metrics,
        [
            NameContexts {
                name: "req".into(),
                contexts: 3,
                tags: vec![("env".into(), 2), ("route".into(), 2), ("bare".into(), 1)],
            },
            NameContexts {
                name: "img".into(),
                contexts: 1,
                tags: vec![("image".into(), 2)],
            },
        ]
    );
    assert_eq!(report.total_contexts(), 4);
    assert_eq!(
        report.render(10, 5),
        format!("{HEADING}          3\treq\t(2 env, 2 route, 1 bare)\n          1\timg\t(2 image)\n")
    );
}

#[test]
fn limits_hide_names_and_tags_behind_summary_lines_but_never_just_one() {
    let mut contexts = Vec::new();
    for (name, n) in [("a", 3), ("b", 2), ("c", 1)] {
        for i in 0..n {
            contexts.push(ctx(name, &[&format!("k:{i}")]));
        }
    }
    let report = ContextReport::from_contexts(&contexts);
    assert_eq!(
        report.render(1, 5),
        format!("{HEADING}          3\ta\t(3 k)\n          3\t(other 2 metrics)\n")
    );
    assert_eq!(
        report.render(2, 5).lines().count(),
        4,
        "one hidden line is shown instead"
    );
    assert_eq!(report.render(usize::MAX, 5).lines().count(), 4);

    let tags = ContextReport::from_contexts(&[ctx("m", &["a:1", "a:2", "a:3", "b:1", "b:2", "c:1"])]);
    assert_eq!(
        tags.render(10, 1),
        format!("{HEADING}          1\tm\t(3 a, 3 values in 2 other tags)\n")
    );
    assert_eq!(
        tags.render(10, 2),
        format!("{HEADING}          1\tm\t(3 a, 2 b, 1 c)\n")
    );
    assert_eq!(ContextReport::default().render(10, 5), HEADING);
}

fn report() -> StatsReport {
    let mut c = StatsCollector::new(100);
    let at = 1_700_000_000;
    for (name, tags, n) in [
        ("web.hits", &["route:/a", "env:prod"][..], 3),
        ("web.hits", &["route:/b", "env:prod"][..], 1),
        ("db.query", &[][..], 2),
    ] {
        for _ in 0..n {
            c.record(&sample(&ctx(name, tags)), at);
        }
    }
    c.finish()
}

#[test]
fn the_summary_table_has_a_row_per_context_sorted_filtered_and_limited() {
    let all = render_stats_summary(&report(), &StatsView::default());
    assert_eq!(
        all,
        "Metric   | Tags              | Count | Last Seen\n\
         ---------+-------------------+-------+------------------------\n\
         db.query |                   | 2     | 2023-11-14 22:13:20 UTC\n\
         web.hits | env:prod,route:/a | 3     | 2023-11-14 22:13:20 UTC\n\
         web.hits | env:prod,route:/b | 1     | 2023-11-14 22:13:20 UTC\n"
    );
    let view = StatsView {
        filter: Some("web".into()),
        limit: Some(1),
        sort: Some(SortDirection::Descending),
    };
    let some = render_stats_summary(&report(), &view);
    assert_eq!(some.lines().count(), 3, "{some}");
    assert!(some.lines().nth(2).unwrap().contains("route:/b"), "{some}");
    let none = StatsView {
        filter: Some("nothing".into()),
        ..StatsView::default()
    };
    assert_eq!(render_stats_summary(&report(), &none), "No metrics processed yet.\n");
}

#[test]
fn the_cardinality_table_has_a_row_per_name_with_its_busiest_tags() {
    let out = render_stats_cardinality(&report(), &StatsView::default());
    assert_eq!(
        out,
        "Metric   | Unique Contexts | Highest Cardinality Tags (top 5)\n\
         ---------+-----------------+---------------------------------\n\
         web.hits | 2               | route (2), env (1)\n\
         db.query | 1               | [no tags]\n"
    );
}

#[test]
fn unix_seconds_print_as_utc_dates() {
    assert_eq!(format_unix_utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(format_unix_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(format_unix_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    assert_eq!(format_unix_utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
}

/// The aggregator task's loop, reduced to what the server needs.
async fn serve(mut server: DebugServer, contexts: Vec<Context>, mut batches: mpsc::Receiver<MetricBatch>) {
    loop {
        tokio::select! {
            event = server.next() => server.handle(event, || contexts.iter().cloned()),
            batch = batches.recv() => match batch {
                Some(b) => server.observe(&b, 42),
                None => return,
            },
        }
    }
}

#[tokio::test]
async fn a_collection_runs_for_its_duration_and_a_second_one_meanwhile_is_refused() {
    let (handle, server) = channel(100);
    let a = ctx("a", &["t:1"]);
    let (batches, rx) = mpsc::channel(4);
    let task = tokio::spawn(serve(server, vec![a.clone(), ctx("b", &[])], rx));

    batches.send(sample(&a)).await.unwrap(); // before: not counted
    tokio::task::yield_now().await;
    let first = tokio::spawn({
        let handle = handle.clone();
        async move { handle.stats(Duration::from_millis(500)).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    batches.send(samples(&[&a, &a])).await.unwrap();
    assert_eq!(handle.stats(Duration::from_millis(10)).await, Err(DebugError::Busy));
    let report = first.await.unwrap().unwrap();
    assert_eq!(report.stats.len(), 1);
    assert_eq!((report.stats[0].count, report.stats[0].last_seen), (2, 42));

    let contexts = handle.contexts().await.unwrap();
    assert_eq!(contexts.len(), 2);
    // The next collection may start; nothing arrives during it.
    assert_eq!(handle.stats(Duration::from_millis(10)).await.unwrap().stats, []);

    drop(batches);
    task.await.unwrap();
    assert_eq!(handle.contexts().await, Err(DebugError::Gone));
}
