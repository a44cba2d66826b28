//! The single integration test binary: runs the real `spade` binary on real `.dig` files.

mod bad_input;
mod conformance_run;
mod crash;
mod run;
mod tidy;
mod util;
