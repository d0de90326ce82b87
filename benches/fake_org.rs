//! Placeholder: the fake org serving-speed bench (owned by the fake org work).
fn main() {}
