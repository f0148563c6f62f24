//! End-to-end tests of `orders serve`: the real binary, a real SQLite file, real HTTP.

mod archive;
mod archive_answers;
mod archive_aws;
mod authentication;
mod aws_stack;
mod bad_input;
mod customer_orders;
mod delivery;
mod events_export;
mod faults;
mod history;
mod history_aws;
mod left_behind;
mod loadtest;
mod operations;
mod pipeline;
mod readme;
mod reconcile;
mod restart;
mod serve_aws;
mod slow_clients;
mod support;
mod tools;
mod tools_aws;
