//! End-to-end tests of `orders serve`: the real binary, a real SQLite file, real HTTP.

mod aws_stack;
mod bad_input;
mod faults;
mod left_behind;
mod loadtest;
mod pipeline;
mod readme;
mod restart;
mod serve_aws;
mod support;
mod tools;
mod tools_aws;
