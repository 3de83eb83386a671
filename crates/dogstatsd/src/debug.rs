//! What `agent-data-plane dogstatsd stats` and `dogstatsd top` show, and how
//! the API gets it from the aggregator task.
//!
//! - **stats** (the traffic view; the Agent's `dogstatsd-stats`, ADP's
//!   `dogstatsd stats`): for a given duration, every metric sample that
//!   reaches the aggregator (after enrichment: mapped names, added tags,
//!   distribution copies) is counted per context; the answer is a
//!   [`StatsReport`], one [`MetricStat`] (name, tags, count, last seen) per
//!   context. Only one collection runs at a time.
//! - **top** (the memory view; the Agent's `dogstatsd top`, saluki#2101):
//!   the contexts the aggregator holds *now*, summarised per metric name in a
//!   [`ContextReport`]: how many contexts, and how many distinct values each
//!   tag key has, which is what a board owner needs to find the metric that
//!   fills the memory.
//!
//! # Cost
//!
//! The aggregator task owns a [`DebugServer`] and the API a [`DebugHandle`]
//! (made together by [`channel`]). Outside a stats collection,
//! [`DebugServer::observe`] is one branch per batch. A `top` request costs the
//! aggregator task a copy of every context it holds (an owned [`Context`]
//! each, built from the context store's borrowed strings; short strings are
//! inline, so mostly one allocation for the tag list); the summary is
//! computed by the caller, off that task ([`ContextReport::from_contexts`]). A collection tracks at most as many
//! contexts as the limit given to [`channel`] (the aggregator's
//! `aggregate_context_limit`); samples of contexts beyond it are counted in
//! [`StatsReport::untracked`].
//!
//! # Output
//!
//! [`render_stats_summary`], [`render_stats_cardinality`] and
//! [`ContextReport::render`] print what the commands print: the first two as
//! ADP's `stats -m summary|cardinality` tables, the last in the Agent's
//! `dogstatsd top` format (`   Contexts<TAB>Metric name<TAB>(number of unique
//! values for each tag)`, then one line per name, `(other N metrics)` and
//! `V values in T other tags` for what a limit hides; a limit hides nothing
//! when it would hide a single line).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use adp_model::{Context, ContextRef, MetricBatch};
use serde::{Deserialize, Serialize};
use stringtheory::MetaString;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// One context's traffic during a stats collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricStat {
    /// The metric name.
    pub name: String,
    /// The context's tags, sorted.
    pub tags: Vec<String>,
    /// Samples received.
    pub count: u64,
    /// When the last one arrived, Unix seconds.
    pub last_seen: u64,
}

/// What a stats collection saw (ADP's `/dogstatsd/stats` answer: `stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    /// One entry per context seen, most samples first.
    pub stats: Vec<MetricStat>,
    /// Samples of contexts not tracked because the collection already held
    /// as many contexts as its limit.
    #[serde(default)]
    pub untracked: u64,
}

/// Counts samples per context for a stats collection.
#[derive(Debug)]
pub struct StatsCollector {
    entries: HashMap<u64, (Context, u64, i64)>,
    limit: usize,
    untracked: u64,
}

impl StatsCollector {
    /// A collector tracking at most `limit` contexts.
    pub fn new(limit: usize) -> Self {
        Self {
            entries: HashMap::new(),
            limit,
            untracked: 0,
        }
    }

    /// Counts every sample of `batch`, received at `now` (Unix seconds).
    pub fn record(&mut self, batch: &MetricBatch, now: i64) {
        for sample in batch.samples() {
            let context = batch.context_of(sample);
            let held = self.entries.len();
            match self.entries.get_mut(&context.key) {
                Some((_, count, last_seen)) => {
                    *count += 1;
                    *last_seen = now;
                }
                None if held < self.limit => {
                    self.entries
                        .insert(context.key, (owned_context(batch, context), 1, now));
                }
                None => self.untracked += 1,
            }
        }
    }

    /// The report: most samples first, then by name and tags.
    pub fn finish(self) -> StatsReport {
        let mut stats: Vec<MetricStat> = self
            .entries
            .into_values()
            .map(|(context, count, last_seen)| MetricStat {
                name: context.name().to_string(),
                tags: context.tags().iter().map(|t| t.to_string()).collect(),
                count,
                last_seen: u64::try_from(last_seen).unwrap_or(0),
            })
            .collect();
        stats.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.name, &a.tags).cmp(&(&b.name, &b.tags)))
        });
        StatsReport {
            stats,
            untracked: self.untracked,
        }
    }
}

/// `context` of `batch` as an owned [`Context`] (tags sorted and unique).
fn owned_context(batch: &MetricBatch, context: &ContextRef) -> Context {
    let mut tags: Vec<&str> = batch.tags_of(context).collect();
    tags.sort_unstable();
    tags.dedup();
    Context::from_parts(
        context.key,
        MetaString::from(batch.name(context)),
        tags.into_iter().map(MetaString::from).collect(),
    )
}

/// One metric name's contexts in the aggregator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameContexts {
    /// The metric name.
    pub name: String,
    /// Contexts (distinct tag sets) held under this name.
    pub contexts: u64,
    /// Per tag key (a tag's text before its first `:`, or the whole tag),
    /// the number of distinct tags with that key; most first, then by key.
    pub tags: Vec<(String, u64)>,
}

/// The contexts the aggregator holds, per metric name (the `top` view).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextReport {
    /// Every name, most contexts first, then by name.
    pub metrics: Vec<NameContexts>,
}

impl ContextReport {
    /// Summarises `contexts` (a context listed twice, as the aggregator
    /// lists one that has samples of two types, counts once).
    pub fn from_contexts<'a>(contexts: impl IntoIterator<Item = &'a Context>) -> Self {
        let mut seen: HashSet<u64> = HashSet::new();
        let mut names: HashMap<&str, (u64, HashMap<&str, HashSet<&str>>)> = HashMap::new();
        for context in contexts {
            if !seen.insert(context.key()) {
                continue;
            }
            let (count, tags) = names.entry(context.name().as_str()).or_default();
            *count += 1;
            for tag in context.tags().iter() {
                let tag = tag.as_str();
                let key = tag.split_once(':').map_or(tag, |(k, _)| k);
                tags.entry(key).or_default().insert(tag);
            }
        }
        let mut metrics: Vec<NameContexts> = names
            .into_iter()
            .map(|(name, (contexts, tags))| {
                let mut tags: Vec<(String, u64)> = tags
                    .into_iter()
                    .map(|(key, values)| (key.to_owned(), values.len() as u64))
                    .collect();
                tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                NameContexts {
                    name: name.to_owned(),
                    contexts,
                    tags,
                }
            })
            .collect();
        metrics.sort_by(|a, b| b.contexts.cmp(&a.contexts).then_with(|| a.name.cmp(&b.name)));
        Self { metrics }
    }

    /// Every context counted.
    pub fn total_contexts(&self) -> u64 {
        self.metrics.iter().map(|m| m.contexts).sum()
    }

    /// The report as the Agent's `dogstatsd top` prints it: at most
    /// `metric_limit` names and `tag_limit` tag keys per name.
    pub fn render(&self, metric_limit: usize, tag_limit: usize) -> String {
        let mut out = String::from("   Contexts\tMetric name\t(number of unique values for each tag)\n");
        let shown = shown_count(self.metrics.len(), metric_limit);
        for m in &self.metrics[..shown] {
            let _ = write!(out, " {:>10}\t{}\t(", m.contexts, m.name);
            let tags_shown = shown_count(m.tags.len(), tag_limit);
            let mut parts: Vec<String> = m.tags[..tags_shown]
                .iter()
                .map(|(key, n)| format!("{n} {key}"))
                .collect();
            let hidden = &m.tags[tags_shown..];
            if !hidden.is_empty() {
                let values: u64 = hidden.iter().map(|(_, n)| n).sum();
                parts.push(format!("{values} values in {} other tags", hidden.len()));
            }
            out.push_str(&parts.join(", "));
            out.push_str(")\n");
        }
        let hidden = &self.metrics[shown..];
        if !hidden.is_empty() {
            let contexts: u64 = hidden.iter().map(|m| m.contexts).sum();
            let _ = writeln!(out, " {contexts:>10}\t(other {} metrics)", hidden.len());
        }
        out
    }
}

/// How many of `items` a `limit` shows: all of them when hiding would leave
/// a single line behind (a summary line would take its place anyway).
fn shown_count(items: usize, limit: usize) -> usize {
    if items.saturating_sub(limit) > 1 {
        limit
    } else {
        items
    }
}

/// Sort direction of the stats tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDirection {
    /// Ascending.
    Ascending,
    /// Descending.
    Descending,
}

/// Which rows of a stats report to print: those whose name contains
/// `filter`, then at most `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsView {
    /// Substring a metric name must contain.
    pub filter: Option<String>,
    /// Rows to print at most (after filtering and sorting).
    pub limit: Option<usize>,
    /// Sort direction (the table's default when unset).
    pub sort: Option<SortDirection>,
}

impl StatsView {
    fn keep(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }
}

/// A left-aligned text table with a header rule, columns separated by ` | `.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(&mut header.iter().copied());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&rule.join("-+-"));
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// ADP's `stats -m summary` table, `Metric | Tags | Count | Last Seen`: one
/// row per context, by name (ascending unless told otherwise); "No metrics
/// processed yet." (the Agent's words) when nothing arrived.
pub fn render_stats_summary(report: &StatsReport, view: &StatsView) -> String {
    let mut stats: Vec<&MetricStat> = report.stats.iter().filter(|s| view.keep(&s.name)).collect();
    if stats.is_empty() {
        return "No metrics processed yet.\n".to_owned();
    }
    stats.sort_by(|a, b| (&a.name, &a.tags).cmp(&(&b.name, &b.tags)));
    if view.sort == Some(SortDirection::Descending) {
        stats.reverse();
    }
    let rows: Vec<Vec<String>> = stats
        .iter()
        .take(view.limit.unwrap_or(usize::MAX))
        .map(|s| {
            vec![
                s.name.clone(),
                s.tags.join(","),
                s.count.to_string(),
                format_unix_utc(s.last_seen),
            ]
        })
        .collect();
    let mut out = table(&["Metric", "Tags", "Count", "Last Seen"], &rows);
    if report.untracked > 0 {
        let _ = writeln!(
            out,
            "{} samples of further contexts were not tracked (the collection holds at most as many contexts as aggregate_context_limit).",
            report.untracked
        );
    }
    out
}

/// ADP's `stats -m cardinality` table, `Metric | Unique Contexts | Highest
/// Cardinality Tags (top 5)`: one row per name, most contexts first unless
/// told otherwise; each tag key with its number of distinct values.
pub fn render_stats_cardinality(report: &StatsReport, view: &StatsView) -> String {
    let mut names: HashMap<&str, (u64, HashMap<&str, HashSet<&str>>)> = HashMap::new();
    for s in report.stats.iter().filter(|s| view.keep(&s.name)) {
        let (contexts, tags) = names.entry(s.name.as_str()).or_default();
        *contexts += 1;
        for tag in &s.tags {
            let (key, value) = tag.split_once(':').unwrap_or((tag, ""));
            tags.entry(key).or_default().insert(value);
        }
    }
    if names.is_empty() {
        return "No metrics processed yet.\n".to_owned();
    }
    // Name, contexts, tag keys with their distinct values.
    type Row<'a> = (&'a str, u64, Vec<(&'a str, usize)>);
    let mut rows: Vec<Row<'_>> = names
        .into_iter()
        .map(|(name, (contexts, tags))| {
            let mut tags: Vec<(&str, usize)> = tags.into_iter().map(|(k, v)| (k, v.len())).collect();
            tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            (name, contexts, tags)
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    if view.sort == Some(SortDirection::Ascending) {
        rows.reverse();
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .take(view.limit.unwrap_or(usize::MAX))
        .map(|(name, contexts, tags)| {
            let top = if tags.is_empty() {
                "[no tags]".to_owned()
            } else {
                tags.iter()
                    .take(5)
                    .map(|(k, n)| format!("{k} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![name.to_owned(), contexts.to_string(), top]
        })
        .collect();
    table(
        &["Metric", "Unique Contexts", "Highest Cardinality Tags (top 5)"],
        &rows,
    )
}

/// `YYYY-MM-DD HH:MM:SS UTC` (no time-zone database on a small board).
pub fn format_unix_utc(secs: u64) -> String {
    let t = adp_fmt::Utc::from_unix(i64::try_from(secs).unwrap_or(i64::MAX));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Why a request to the aggregator task was not answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DebugError {
    /// A stats collection is already running.
    #[error("a DogStatsD statistics collection is already running; try again when it ends")]
    Busy,
    /// The aggregator task is not running (stopping, or not started).
    #[error("the DogStatsD pipeline is not running")]
    Gone,
}

enum Request {
    Stats {
        duration: Duration,
        reply: oneshot::Sender<Result<StatsReport, DebugError>>,
    },
    Contexts {
        reply: oneshot::Sender<Vec<Context>>,
    },
}

/// Asks the aggregator task; cheap to clone.
#[derive(Clone, Debug)]
pub struct DebugHandle {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stats { duration, .. } => f.debug_struct("Stats").field("duration", duration).finish(),
            Self::Contexts { .. } => f.write_str("Contexts"),
        }
    }
}

impl DebugHandle {
    /// Collects stats for `duration`, then returns them.
    pub async fn stats(&self, duration: Duration) -> Result<StatsReport, DebugError> {
        let (reply, report) = oneshot::channel();
        self.tx
            .send(Request::Stats { duration, reply })
            .await
            .map_err(|_| DebugError::Gone)?;
        report.await.unwrap_or(Err(DebugError::Gone))
    }

    /// The contexts the aggregator holds now (a snapshot, copied).
    pub async fn contexts(&self) -> Result<Vec<Context>, DebugError> {
        let (reply, contexts) = oneshot::channel();
        self.tx
            .send(Request::Contexts { reply })
            .await
            .map_err(|_| DebugError::Gone)?;
        contexts.await.map_err(|_| DebugError::Gone)
    }
}

struct Collection {
    collector: StatsCollector,
    deadline: Instant,
    reply: oneshot::Sender<Result<StatsReport, DebugError>>,
}

/// The aggregator task's side: it answers requests and feeds a running
/// stats collection.
pub struct DebugServer {
    rx: mpsc::Receiver<Request>,
    closed: bool,
    collection: Option<Collection>,
    limit: usize,
}

impl std::fmt::Debug for DebugServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugServer")
            .field("collecting", &self.collection.is_some())
            .field("limit", &self.limit)
            .finish()
    }
}

/// What [`DebugServer::next`] waited for.
#[derive(Debug)]
pub struct DebugEvent(Event);

#[derive(Debug)]
enum Event {
    Request(Request),
    CollectionDone,
}

/// A handle and its server; a stats collection tracks at most `limit` contexts.
pub fn channel(limit: usize) -> (DebugHandle, DebugServer) {
    // Requests are rare and answered at once: a few may wait.
    let (tx, rx) = mpsc::channel(4);
    (
        DebugHandle { tx },
        DebugServer {
            rx,
            closed: false,
            collection: None,
            limit,
        },
    )
}

impl DebugServer {
    /// Counts `metrics`, received at `now` (Unix seconds), when a stats
    /// collection runs; otherwise does nothing.
    #[inline]
    pub fn observe(&mut self, metrics: &MetricBatch, now: i64) {
        if let Some(c) = &mut self.collection {
            c.collector.record(metrics, now);
        }
    }

    /// Waits for a request or the end of the running collection. Never
    /// completes once every handle is gone and nothing runs.
    pub async fn next(&mut self) -> DebugEvent {
        let deadline = self.collection.as_ref().map(|c| c.deadline);
        let closed = self.closed;
        let collecting = deadline.is_some();
        tokio::select! {
            request = self.rx.recv(), if !closed => match request {
                Some(r) => DebugEvent(Event::Request(r)),
                None => {
                    self.closed = true;
                    match deadline {
                        Some(d) => {
                            tokio::time::sleep_until(d).await;
                            DebugEvent(Event::CollectionDone)
                        }
                        None => std::future::pending().await,
                    }
                }
            },
            () = sleep_until_or_never(deadline), if collecting => DebugEvent(Event::CollectionDone),
            else => std::future::pending::<DebugEvent>().await,
        }
    }

    /// Handles what [`Self::next`] returned; `contexts` lists the
    /// aggregator's contexts, called only for a `top` request.
    pub fn handle<I>(&mut self, event: DebugEvent, contexts: impl FnOnce() -> I)
    where
        I: Iterator<Item = Context>,
    {
        match event.0 {
            Event::CollectionDone => {
                if let Some(c) = self.collection.take() {
                    let report = c.collector.finish();
                    tracing::debug!(contexts = report.stats.len(), "DogStatsD statistics collection ended.");
                    let _ = c.reply.send(Ok(report));
                }
            }
            Event::Request(Request::Contexts { reply }) => {
                let _ = reply.send(contexts().collect());
            }
            Event::Request(Request::Stats { duration, reply }) => {
                // A collection whose client went away does not block the next.
                if self.collection.as_ref().is_some_and(|c| !c.reply.is_closed()) {
                    let _ = reply.send(Err(DebugError::Busy));
                    return;
                }
                self.collection = Some(Collection {
                    collector: StatsCollector::new(self.limit),
                    deadline: Instant::now() + duration,
                    reply,
                });
                tracing::debug!(
                    duration_secs = duration.as_secs(),
                    "DogStatsD statistics collection started."
                );
            }
        }
    }
}

async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
