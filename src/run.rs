//! TODO
pub fn main(_mode: crate::conf::Mode) -> i32 { 0 }
