//! One module per subcommand: argument struct plus `run`.

pub mod create;
pub mod demo;
pub mod dht;
pub mod download;
pub mod info;
pub mod seed;
pub mod tracker;
pub mod transfer;
