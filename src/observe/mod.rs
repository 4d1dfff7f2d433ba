//! Kernel observation: TIME_WAIT counts and TCP counters.
