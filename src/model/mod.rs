//! The exhaustion model: pure arithmetic from a plan and host settings to a prediction.
