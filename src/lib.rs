//! myinfo-proxy: signs every Singpass Myinfo v4 and FAPI 2.0 call for the app behind it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod admin;
pub mod binding;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod emulator;
pub mod error;
pub mod inbound;
pub mod jose;
pub mod key_source;
pub mod layer;
pub mod metrics;
pub mod proxy;
pub mod route;
pub mod server;
pub mod stack;
pub mod upstream;
pub mod upstream_answer;
