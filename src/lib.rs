//! rim: a self-hosted instant-messaging server in one binary and one SQLite file.
//!
//! See the README's Architecture section for the bird's-eye view. In short:
//! [`server`] accepts connections and routes them to [`rest`] or [`ws`]; both
//! decode with [`protocol`] and act through [`app`], which combines
//! [`store`] (all SQL) with [`hub`] (who is online).

pub mod admin;
pub mod app;
pub mod auth;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod error;
pub mod hub;
pub mod limits;
pub mod log;
pub mod malloc;
pub mod media;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod push;
pub mod rest;
pub mod search;
pub mod server;
pub mod store;
pub mod time;
pub mod validate;
pub mod web;
pub mod webpush;
pub mod ws;

pub use config::Config;
