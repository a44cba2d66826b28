//! The single integration test binary: runs the real `spade` binary on real `.dig` files.

mod api;
mod bad_input;
mod check;
mod client;
mod conformance_run;
mod corpus;
mod crash;
mod daemon;
mod deep_expressions;
mod engine_regressions;
mod eval_conformance;
mod http;
mod http_server;
mod nopanic;
mod ownership;
mod plugins;
mod py;
mod regression;
mod require;
mod run;
mod schedule_conformance;
mod schedule_params;
mod serve;
mod tidy;
mod util;
mod yaml;
