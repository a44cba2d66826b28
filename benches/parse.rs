//! Benchmark: parse + lower of the whole Digdag corpus and of a generated 1 MB file.

fn main() {}
