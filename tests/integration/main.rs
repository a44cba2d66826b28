//! The single integration test binary: runs the real `spade` binary on real `.dig` files.

mod tidy;
mod util;
