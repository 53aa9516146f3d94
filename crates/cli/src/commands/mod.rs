//! One module per noun: its clap syntax and its handler.

pub mod clone;
pub mod console;
pub mod disk;
pub mod host;
pub mod instance;
pub mod migrate;
pub mod monitor;
pub mod network;
pub mod nic;
pub mod operation;
pub mod pool;
pub mod remote;
pub mod save;
pub mod snapshot;
pub mod spec;
pub mod state;
pub mod stats;
pub mod values;
pub mod volume;
