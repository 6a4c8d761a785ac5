//! [`MetadataStore`](meterbook_core::store::MetadataStore) on SQLite: enrollments, hierarchy, prices, commitment, periods.

mod enrollment;
mod hierarchy;
mod sheets;
mod store;

pub(crate) use enrollment::{bump_version, last_closed, term};
pub(crate) use sheets::load_sheet;
