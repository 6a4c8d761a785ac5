//! Hand-computed golden scenarios for rating, the statement, booking and
//! ingestion. Each takes a fresh, empty store.

mod admin;
mod booking;
mod exports;
mod notify;
mod rating;
mod reads;
mod shared;

pub use admin::*;
pub use booking::*;
pub use exports::*;
pub use notify::*;
pub use rating::*;
pub use reads::*;
pub use shared::*;
