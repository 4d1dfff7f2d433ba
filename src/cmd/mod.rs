//! Subcommand glue, one module per command: its flags, its argument handling and its
//! printing, so that `model/` stays pure arithmetic.

pub mod predict;
