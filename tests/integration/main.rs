//! The single integration test binary: runs the real `spade` binary on real `.dig` files.

mod bad_input;
mod check;
mod conformance_run;
mod corpus;
mod crash;
mod eval_conformance;
mod nopanic;
mod regression;
mod run;
mod schedule_conformance;
mod schedule_params;
mod tidy;
mod util;
mod yaml;
