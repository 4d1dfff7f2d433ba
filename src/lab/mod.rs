//! The Linux network-namespace lab.
