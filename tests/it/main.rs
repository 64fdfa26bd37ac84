//! The single integration-test binary (one link on 2 cores); each area is a module.

mod common;

mod cli_basics;
mod crash;
mod damage;
mod engine;
mod hostile;
