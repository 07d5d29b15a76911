//! The dashboard (dpo and admin): held copies per day and rule over the last 30 days as a bar
//! chart drawn here as inline SVG (presentation attributes only: the CSP allows no inline
//! styles and no script), the detectors by held copies with their false-positive rates, and
//! the delivery queue; and, for a school that starts with its rules on `monitor`, the messages
//! each rule fired on but held for nobody, per day: what it would have held.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use hallpass_core::RuleId;
use hallpass_store::DayRuleCount;

use crate::App;
use crate::auth::PageCaller;
use crate::clock;
use crate::error::{Failure, PageError};
use crate::pages::{Nav, html, query_string};

/// Days the chart covers, today included.
pub(crate) const DAYS: i64 = 30;
const MS_PER_DAY: i64 = 86_400_000;

/// Chart geometry (SVG user units).
const SLOT: i64 = 24;
const BAR: i64 = 18;
const LEFT: i64 = 36;
const TOP: i64 = 10;
const PLOT_HEIGHT: i64 = 160;
const WIDTH: i64 = LEFT + SLOT * DAYS + 8;
const HEIGHT: i64 = TOP + PLOT_HEIGHT + 24;

/// One colour per stable rule, in `RuleId::ALL`'s order; rules from elsewhere get grey.
const PALETTE: [&str; 6] = [
    "#1f5f8b", "#b5651d", "#7b3f9e", "#2e7d32", "#c62828", "#5d6d7e",
];
const OTHER: &str = "#9aa5ad";

fn colour(rule: &str) -> &'static str {
    RuleId::ALL
        .iter()
        .position(|r| r.as_str() == rule)
        .and_then(|i| PALETTE.get(i))
        .copied()
        .unwrap_or(OTHER)
}

/// One rule's part of a day's bar.
pub(crate) struct Segment {
    pub rule: String,
    pub held: u64,
    pub y: String,
    pub height: String,
    pub fill: &'static str,
}

/// A day with held copies: one group of segments, stacked.
pub(crate) struct DayBar {
    /// `2026-11-23`.
    pub day: String,
    pub x: i64,
    pub total: u64,
    pub segments: Vec<Segment>,
}

/// A tick under the x axis.
pub(crate) struct Tick {
    pub x: i64,
    pub label: String,
}

/// A rule in the legend.
pub(crate) struct Legend {
    pub rule: String,
    pub fill: &'static str,
    pub held: u64,
}

/// A detector's row.
pub(crate) struct DetectorRow {
    pub detector: String,
    /// Its plain name (`NHS numbers`).
    pub name: String,
    pub href: String,
    pub held: u64,
    pub false_positives: u64,
    /// `12.5%`.
    pub rate: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub(crate) struct DashboardPage {
    pub nav: Nav,
    pub from: String,
    pub to: String,
    pub total: u64,
    pub bars: Vec<DayBar>,
    pub ticks: Vec<Tick>,
    pub legend: Vec<Legend>,
    pub y_max: u64,
    pub width: i64,
    pub height: i64,
    pub left: i64,
    pub top: i64,
    pub axis_y: i64,
    pub axis_right: i64,
    /// Rule hits on mail let through (monitor mode's "would have been held"), per day.
    pub through_bars: Vec<DayBar>,
    pub through_legend: Vec<Legend>,
    pub through_max: u64,
    pub through_total: u64,
    pub detectors: Vec<DetectorRow>,
    pub waiting: u64,
    pub queued: u64,
    pub oldest: Option<String>,
}

/// `2026-11-23` of a time.
fn day_of(ms: i64) -> String {
    clock::rfc3339(ms).chars().take(10).collect()
}

/// The chart's bars: one per day with held copies, segments in rule order, from the counts of
/// [`hallpass_store::Store::held_per_day`] since `first_day_ms` (a midnight).
pub(crate) fn bars(counts: &[DayRuleCount], first_day_ms: i64) -> (Vec<DayBar>, u64) {
    let mut bars: Vec<DayBar> = Vec::new();
    for c in counts {
        let slot = (c.day_ms - first_day_ms).div_euclid(MS_PER_DAY);
        if !(0..DAYS).contains(&slot) || c.held == 0 {
            continue;
        }
        let x = LEFT + slot * SLOT + (SLOT - BAR) / 2;
        if bars.last().is_none_or(|b| b.x != x) {
            bars.push(DayBar {
                day: day_of(c.day_ms),
                x,
                total: 0,
                segments: Vec::new(),
            });
        }
        if let Some(bar) = bars.last_mut() {
            bar.total += c.held;
            bar.segments.push(Segment {
                rule: c.rule.clone(),
                held: c.held,
                y: String::new(),
                height: String::new(),
                fill: colour(&c.rule),
            });
        }
    }
    let y_max = bars.iter().map(|b| b.total).max().unwrap_or(0);
    if y_max > 0 {
        let scale = PLOT_HEIGHT as f64 / y_max as f64;
        for bar in &mut bars {
            let mut bottom = (TOP + PLOT_HEIGHT) as f64;
            for s in &mut bar.segments {
                let h = s.held as f64 * scale;
                bottom -= h;
                s.y = format!("{bottom:.1}");
                s.height = format!("{h:.1}");
            }
        }
    }
    (bars, y_max)
}

/// `3 h 20 min`, `2 d 4 h`, `45 s`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{s} s")
    }
}

/// `12.5%` of `part` in `whole` (`–` when there is no whole).
fn rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    let r = part as f64 * 100.0 / whole as f64;
    let s = format!("{r:.1}");
    format!("{}%", s.strip_suffix(".0").unwrap_or(&s))
}

/// `GET /dashboard`.
pub(crate) async fn page(
    State(app): State<App>,
    PageCaller(caller): PageCaller,
) -> Result<Response, PageError> {
    let now = clock::now_ms();
    let today = now - now.rem_euclid(MS_PER_DAY);
    let first = today - (DAYS - 1) * MS_PER_DAY;
    let store = &app.console.store;
    let counts = store.held_per_day(first).await.map_err(Failure::from)?;
    let (bars, y_max) = bars(&counts, first);

    let mut legend: Vec<Legend> = RuleId::ALL
        .iter()
        .map(|r| Legend {
            rule: r.as_str().to_string(),
            fill: colour(r.as_str()),
            held: 0,
        })
        .collect();
    for c in &counts {
        match legend.iter_mut().find(|l| l.rule == c.rule) {
            Some(l) => l.held += c.held,
            None => legend.push(Legend {
                rule: c.rule.clone(),
                fill: colour(&c.rule),
                held: c.held,
            }),
        }
    }
    let through = store
        .let_through_per_day(first)
        .await
        .map_err(Failure::from)?;
    let (through_bars, through_max) = self::bars(&through, first);
    let mut through_legend: Vec<Legend> = Vec::new();
    for c in &through {
        match through_legend.iter_mut().find(|l| l.rule == c.rule) {
            Some(l) => l.held += c.held,
            None => through_legend.push(Legend {
                rule: c.rule.clone(),
                fill: colour(&c.rule),
                held: c.held,
            }),
        }
    }
    through_legend.sort_by_key(|l| {
        RuleId::ALL
            .iter()
            .position(|r| r.as_str() == l.rule)
            .unwrap_or(RuleId::ALL.len())
    });
    let ticks = (0..DAYS)
        .filter(|i| (DAYS - 1 - i) % 7 == 0)
        .map(|i| Tick {
            x: LEFT + i * SLOT + SLOT / 2,
            label: day_of(first + i * MS_PER_DAY)[5..].to_string(),
        })
        .collect();
    let names = &app.console.names;
    let detectors = store
        .detector_stats()
        .await
        .map_err(Failure::from)?
        .into_iter()
        .map(|d| DetectorRow {
            href: format!(
                "/held{}",
                query_string(&[("status", "all"), ("detector", &d.detector)])
            ),
            rate: rate(d.false_positives, d.held),
            name: names(&d.detector),
            detector: d.detector,
            held: d.held,
            false_positives: d.false_positives,
        })
        .collect();
    let stats = store.queue_stats(now).await.map_err(Failure::from)?;
    let t = DashboardPage {
        nav: app.nav(&caller, crate::pages::Section::Dashboard).await,
        from: day_of(first),
        to: day_of(today),
        total: bars.iter().map(|b| b.total).sum(),
        bars,
        ticks,
        legend,
        y_max,
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        top: TOP,
        axis_y: TOP + PLOT_HEIGHT,
        axis_right: LEFT + SLOT * DAYS,
        through_total: through_bars.iter().map(|b| b.total).sum(),
        through_bars,
        through_legend,
        through_max,
        detectors,
        waiting: stats.held,
        queued: stats.queued,
        oldest: stats.oldest_age_ms.map(age),
    };
    html(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(day: i64, rule: &str, held: u64) -> DayRuleCount {
        DayRuleCount {
            day_ms: day * MS_PER_DAY,
            rule: rule.into(),
            held,
        }
    }

    #[test]
    fn bars_stack_rules_per_day_and_scale_to_the_busiest_day() {
        let counts = [
            count(100, "bulk_send", 1),
            count(100, "personal_data_external", 3),
            count(103, "personal_data_external", 2),
            // Outside the 30 days: left out.
            count(99, "personal_data_external", 50),
            count(130, "personal_data_external", 50),
        ];
        let (bars, y_max) = bars(&counts, 100 * MS_PER_DAY);
        assert_eq!(y_max, 4);
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].total, 4);
        assert_eq!(bars[0].segments.len(), 2);
        // The busiest day fills the plot: its segments reach from the axis to the top.
        let top: f64 = bars[0].segments[1].y.parse().unwrap();
        assert_eq!(top, TOP as f64);
        let heights: f64 = bars[0]
            .segments
            .iter()
            .map(|s| s.height.parse::<f64>().unwrap())
            .sum();
        assert_eq!(heights, PLOT_HEIGHT as f64);
        assert_eq!(bars[1].x - bars[0].x, 3 * SLOT);
        assert_eq!(bars[1].segments[0].height, "80.0");
    }

    #[test]
    fn ages_and_rates_read_well() {
        assert_eq!(age(45_000), "45 s");
        assert_eq!(age(5 * 60_000), "5 min");
        assert_eq!(age((3 * 60 + 20) * 60_000), "3 h 20 min");
        assert_eq!(age((2 * 24 + 4) * 3_600_000), "2 d 4 h");
        assert_eq!(rate(1, 8), "12.5%");
        assert_eq!(rate(1, 4), "25%");
        assert_eq!(rate(0, 0), "–");
    }
}
