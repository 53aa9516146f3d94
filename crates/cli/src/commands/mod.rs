//! One module per noun or group of verbs.

pub mod console;
pub mod host;
pub mod instance;
pub mod monitor;
pub mod state;
