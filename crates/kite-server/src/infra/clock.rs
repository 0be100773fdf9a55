//! Where the time comes from. Handlers read it once per request, at the edge, and pass `now` down,
//! so one request never sees two instants; tests pin it to probe expiry at exactly its boundary.

use std::sync::Arc;

use time::OffsetDateTime;

#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(OffsetDateTime::now_utc))
    }

    /// A clock that always answers `at`.
    pub fn pinned(at: OffsetDateTime) -> Clock {
        Clock(Arc::new(move || at))
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }
}
