//! The profile: where the loop's time went, by scheduling or spawn site.
//!
//! ```
//! let el = solo::EventLoop::builder().debug(true).build().unwrap();
//! let h = el.handle();
//! for _ in 0..3 {
//!     h.call_soon(|| {}); // one site, three calls
//! }
//! h.stop();
//! el.run_forever().unwrap();
//! let profile = el.profile();
//! assert_eq!(profile[0].count, 3);
//! print!("{}", solo::debug::format_profile(&profile));
//! ```

use std::panic::Location;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::shared::{kind_index, lock, DebugShared, KINDS};
use super::Debug;
use crate::callback::CallbackKind;

/// Aggregated time for one scheduling or spawn site.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SiteProfile {
    /// The site.
    pub site: &'static Location<'static>,
    /// What was scheduled there (the last kind seen).
    pub kind: CallbackKind,
    /// How many calls or polls.
    pub count: u64,
    /// Their total time.
    pub total: Duration,
    /// The longest one.
    pub max: Duration,
}

/// Prints a profile, sorted as given (by total time from [`EventLoop::profile`]).
///
/// [`EventLoop::profile`]: crate::EventLoop::profile
pub fn format_profile(rows: &[SiteProfile]) -> String {
    let mut s = format!(
        "{:>10} {:>10} {:>10}  {:<20} site\n",
        "total", "count", "max", "kind"
    );
    for r in rows {
        s.push_str(&format!(
            "{:>10} {:>10} {:>10}  {:<20} {}\n",
            format!("{:.3}s", r.total.as_secs_f64()),
            r.count,
            format!("{:.3}s", r.max.as_secs_f64()),
            r.kind.to_string(),
            r.site
        ));
    }
    s
}

/// Per-site aggregate. The loop finds it through its own map and bumps it with relaxed loads
/// and stores (it is the only writer); the monitor reads it through `DebugShared::sites`, a
/// list that grows only when a new site shows up.
pub(crate) struct SiteCell {
    site: &'static Location<'static>,
    kind: AtomicU8,
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl SiteCell {
    /// Adds a call of `ns` at this site.
    #[inline]
    pub(super) fn add(&self, kind: CallbackKind, ns: u64) {
        let k = kind_index(kind);
        if self.kind.load(Ordering::Relaxed) != k {
            self.kind.store(k, Ordering::Relaxed);
        }
        let bump =
            |c: &AtomicU64, n: u64| c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        bump(&self.count, 1);
        bump(&self.total_ns, ns);
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.store(ns, Ordering::Relaxed);
        }
    }

    pub(super) fn new(site: &'static Location<'static>, kind: CallbackKind) -> SiteCell {
        SiteCell {
            site,
            kind: AtomicU8::new(kind_index(kind)),
            count: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl DebugShared {
    /// The profile, most time first, from any thread.
    pub(crate) fn profile(&self) -> Vec<SiteProfile> {
        let cells: Vec<Arc<SiteCell>> = lock(&self.sites).clone();
        let mut v: Vec<SiteProfile> = cells
            .iter()
            .map(|c| SiteProfile {
                site: c.site,
                kind: KINDS[c.kind.load(Ordering::Relaxed) as usize % KINDS.len()],
                count: c.count.load(Ordering::Relaxed),
                total: Duration::from_nanos(c.total_ns.load(Ordering::Relaxed)),
                max: Duration::from_nanos(c.max_ns.load(Ordering::Relaxed)),
            })
            .filter(|r| r.count > 0)
            .collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(b.count.cmp(&a.count)));
        v
    }
}

impl Debug {
    /// Adds a call of `ns` to its site's row.
    pub(super) fn add_to_site(
        &self,
        kind: CallbackKind,
        site: &'static Location<'static>,
        ns: u64,
    ) {
        let mut sites = self.sites.borrow_mut();
        let cell = sites.entry(site).or_insert_with(|| {
            let cell = Arc::new(SiteCell::new(site, kind));
            lock(&self.shared.sites).push(cell.clone());
            cell
        });
        cell.add(kind, ns);
    }

    pub(crate) fn profile(&self) -> Vec<SiteProfile> {
        self.shared.profile()
    }
}
