//! One module per noun or group of verbs.

pub mod console;
pub mod disk;
pub mod host;
pub mod instance;
pub mod monitor;
pub mod network;
pub mod operation;
pub mod remote;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod storage;
