//! The Parquet schema of a table's columns.

use crate::report::table::{ColType, Column};
use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::schema::types::{Type, TypePtr};
use std::io;
use std::sync::Arc;

use super::column::*;

/// The Parquet schema of `cols` (see the table in the module docs).
pub(super) fn schema(cols: &[Column]) -> io::Result<TypePtr> {
    let fields = cols
        .iter()
        .map(|c| {
            let rep = if c.nullable {
                Repetition::OPTIONAL
            } else {
                Repetition::REQUIRED
            };
            let b = |phys| Type::primitive_type_builder(c.name, phys).with_repetition(rep);
            let t = match c.ty {
                ColType::Text => b(PhysicalType::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String))
                    .build(),
                ColType::Decimal { scale } => {
                    let scale =
                        i32::try_from(scale)
                            .ok()
                            .filter(|&s| s <= 38)
                            .ok_or_else(|| {
                                io::Error::new(
                                    io::ErrorKind::InvalidInput,
                                    format!("column `{}`: decimal scale {scale} above 38", c.name),
                                )
                            })?;
                    b(PhysicalType::FIXED_LEN_BYTE_ARRAY)
                        .with_length(DECIMAL_BYTES as i32)
                        .with_precision(38)
                        .with_scale(scale)
                        .with_logical_type(Some(LogicalType::decimal(scale, 38)))
                        .build()
                }
                ColType::Int => b(PhysicalType::INT64).build(),
                ColType::Bool => b(PhysicalType::BOOLEAN).build(),
                ColType::Date => b(PhysicalType::INT32)
                    .with_logical_type(Some(LogicalType::Date))
                    .build(),
                ColType::Timestamp => b(PhysicalType::INT64)
                    .with_logical_type(Some(LogicalType::timestamp(true, TimeUnit::MICROS)))
                    .build(),
            };
            Ok(Arc::new(t?))
        })
        .collect::<io::Result<Vec<TypePtr>>>()?;
    Ok(Arc::new(
        Type::group_type_builder("schema")
            .with_fields(fields)
            .build()?,
    ))
}
