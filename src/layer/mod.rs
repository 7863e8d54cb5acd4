//! The middleware, one file each, all of the same shape: `FooLayer` (config) builds `Foo<S>`.

pub mod inject;
pub mod rescue;

pub use inject::{Inject, InjectLayer, Signing};
pub use rescue::{Rescue, RescueLayer};
