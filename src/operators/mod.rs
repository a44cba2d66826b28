//! Operators (`sh>`, `echo>`, ...) and the one catalog of every operator name spade knows.
pub mod catalog;
