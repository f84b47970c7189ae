//! Integration tests: one binary, shared helpers in `common`.

mod admin;
mod api_extras;
mod child;
mod common;
mod crash;
mod docs_openapi;
mod docs_protocol;
mod files;
mod fuzz;
mod hardening;
mod lifecycle;
mod metrics;
mod reliability;
mod rest_errors;
mod rest_friends;
mod rest_groups;
mod rest_messages;
mod rest_users;
mod search;
mod smoke;
mod soak;
mod web;
mod ws_delivery;
mod ws_errors;
mod ws_messages;
mod ws_session;
