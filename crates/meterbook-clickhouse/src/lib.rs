//! Usage facts in a ClickHouse cluster: a [`meterbook_core::facts::FactStore`]
//! over ClickHouse's HTTP interface, sharded by enrollment.
#![forbid(unsafe_code)]
