//! TODO (being written)
#[derive(Clone, Debug, Default)]
pub struct Options;
pub enum ParseOutcome { Run(Options) }
pub fn parse_args() {}
