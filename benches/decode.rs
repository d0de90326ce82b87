//! Placeholder: the decode-and-write bench (owned by the decode/write work).
fn main() {}
