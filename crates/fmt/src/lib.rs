//! Plain-text formatting shared by the agent, its build script and its tools,
//! without dependencies: UTC dates and times ([`Utc`]) and error chains
//! ([`error_chain`]).
//!
//! Three places print dates: the agent's `dogstatsd stats` report, the build
//! script's `ADP_BUILD_TIME` (from `SOURCE_DATE_EPOCH`) and the packaging
//! tool's changelog, SBOM and image timestamps. A small board has no
//! time-zone database and these need only UTC, so one calendar serves all
//! three (the build script takes this crate as a build-dependency) rather
//! than a date crate or three copies of the arithmetic. Three places also
//! print an error with its causes (the forwarder's transport errors, the
//! test intake's decoding errors, the packaging tool's exit message).
//!
//! # Missing
//!
//! - Time zones other than UTC, leap seconds and parsing dates.
#![deny(missing_docs)]

mod errors;
mod utc;

pub use errors::error_chain;
pub use utc::Utc;
