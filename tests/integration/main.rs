//! The single integration test binary: runs the real `spade` binary on real `.dig` files.

mod check;
mod corpus;
mod eval_conformance;
mod nopanic;
mod schedule_conformance;
mod tidy;
mod util;
