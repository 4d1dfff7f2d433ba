//! Results: what a run measured and what portlab concluded, as data. The summary (what
//! summary.json holds), the verdict, the merge of shards, the comparison of saved runs,
//! the assembly of a run's summary, and the results directory read and written. Nothing
//! here prints: the renderings of these, one per `--format`, are `report`'s.

pub mod assemble;
pub mod client_exec;
pub mod compare;
pub mod dir;
pub mod lab_clients;
pub mod merge;
pub mod suite;
pub mod summary;
pub mod verdict;
