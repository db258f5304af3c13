//! The in-cluster agent: redaction of objects before anything is stored or shipped.
//!
//! Later parts (watching, state, shipping, election, health) build on this.

pub mod redact;
pub mod ship;
pub mod state;
