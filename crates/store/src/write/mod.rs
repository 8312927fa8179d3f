//! Writing a table's data: the streaming sink, the merge-by-key writer, compaction, and the
//! schema evolution policy every writer follows.

mod compact;
mod evolution;
mod merge;
mod sink;
mod spill;

pub use compact::{CompactOptions, CompactOutcome, compact};
pub use evolution::{SchemaEvolution, conform, reconcile};
pub use merge::{ChangeOp, MergeOptions, MergeOutcome, MergeWriter};
pub use sink::{Codec, ParquetSink, SinkOptions};
pub use spill::{Spill, SpilledBatch};
