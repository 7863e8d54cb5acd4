//! myinfo-proxy: signs every Singpass Myinfo v4 and FAPI 2.0 call for the app behind it.
#![forbid(unsafe_code)]

pub mod config;
pub mod jose;
