//! Integration tests of the e-mail plugin: one binary, one file per
//! feature, shared helpers in `util`.

mod file;
mod inbound;
mod injection;
mod smtp;
mod util;
