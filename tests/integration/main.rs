//! The single integration test binary: runs the real `spade` binary on real `.dig` files.

mod conformance_run;
mod run;
mod tidy;
mod util;
