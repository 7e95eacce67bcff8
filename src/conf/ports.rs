//! TODO (being written)
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PortRules;
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PortSpec { #[default] None }
