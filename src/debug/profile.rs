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
use std::time::Duration;

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

/// Per-site aggregate.
pub(super) struct SiteAcc {
    kind: CallbackKind,
    count: u64,
    total_ns: u64,
    max_ns: u64,
}

impl SiteAcc {
    /// Adds a call of `ns` at this site.
    pub(super) fn add(&mut self, kind: CallbackKind, ns: u64) {
        self.kind = kind;
        self.count += 1;
        self.total_ns += ns;
        self.max_ns = self.max_ns.max(ns);
    }

    pub(super) fn new(kind: CallbackKind) -> SiteAcc {
        SiteAcc {
            kind,
            count: 0,
            total_ns: 0,
            max_ns: 0,
        }
    }
}

impl Debug {
    pub(crate) fn profile(&self) -> Vec<SiteProfile> {
        let mut v: Vec<SiteProfile> = self
            .sites
            .borrow()
            .iter()
            .map(|(site, a)| SiteProfile {
                site,
                kind: a.kind,
                count: a.count,
                total: Duration::from_nanos(a.total_ns),
                max: Duration::from_nanos(a.max_ns),
            })
            .collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(b.count.cmp(&a.count)));
        v
    }
}
