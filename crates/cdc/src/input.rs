//! Where a run's events come from: flat change events in Parquet (a pruned, streamed scan), or
//! Debezium envelopes decoded into the same flat layout.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use futures::StreamExt;
use futures::stream::BoxStream;
use highwater_store::source::{ScanBatch, ScanMetrics, ScanPlan};

use crate::debezium::Decoded;
use crate::error::Result;

/// The new events of a run.
pub(crate) enum Input {
    Flat(ScanPlan),
    Debezium(Decoded),
}

impl Input {
    pub(crate) fn schema(&self) -> SchemaRef {
        match self {
            Input::Flat(scan) => Arc::clone(&scan.schema),
            Input::Debezium(decoded) => Arc::clone(&decoded.schema),
        }
    }

    /// Event rows (flat: before filters; Debezium: tombstones excluded).
    pub(crate) fn rows(&self) -> u64 {
        match self {
            Input::Flat(scan) => scan.rows(),
            Input::Debezium(decoded) => decoded.rows,
        }
    }

    pub(crate) fn metrics(&self) -> Option<Arc<ScanMetrics>> {
        match self {
            Input::Flat(scan) => Some(scan.metrics()),
            Input::Debezium(_) => None,
        }
    }

    pub(crate) fn stream(self) -> BoxStream<'static, Result<ScanBatch>> {
        match self {
            Input::Flat(scan) => scan.stream().map(|batch| batch.map_err(Into::into)).boxed(),
            Input::Debezium(decoded) => decoded.stream(),
        }
    }
}
