//! `nop>`: does nothing and succeeds.

use super::{succeeded, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;

pub struct Nop;

impl Operator for Nop {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        tracing::debug!(task = %ctx.run.full_name, "nop");
        Box::pin(std::future::ready(Ok(succeeded())))
    }
}
