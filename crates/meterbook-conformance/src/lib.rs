//! The conformance suite: one set of scenarios written against the storage
//! traits of `meterbook-core`, with hand-computed expected figures. Every
//! backend runs all of them (see `meterbook-sqlite/tests/conformance.rs`):
//!
//! ```ignore
//! #[test]
//! fn tiers_cross_inside_one_row() {
//!     meterbook_conformance::scenarios::tiers_cross_inside_one_row(&fresh_store());
//! }
//! ```
#![forbid(unsafe_code)]

pub mod fact_store;
pub mod fixture;
pub mod mem_facts;
pub mod properties;
pub mod receivers;
pub mod scenarios;
