//! Meterbook's core: domain types, exact fixed-point money, rating, the
//! statement, usage validation and booking, and the storage traits.
//!
//! No I/O happens here: stores implement [`store`]'s traits, the binary and
//! the server call [`ledger`] and [`ingest`] with a store.
#![forbid(unsafe_code)]

pub mod access;
pub mod calendar;
pub mod clock;
pub mod enrollment;
pub mod exports;
pub mod facts;
pub mod figures;
pub mod fixed;
pub mod forecast;
pub mod hierarchy;
pub mod ingest;
pub mod jobs;
pub mod ledger;
pub mod limits;
pub mod notify;
pub mod prices;
pub mod quote;
pub mod shared;
pub mod statement;
pub mod store;
pub mod summary;
pub mod usage;
pub mod users;

pub use calendar::{Day, Period};
pub use enrollment::{Currency, Enrollment, EnrollmentNumber};
pub use fixed::{Amount, Money, Price, Quantity};
