//! The catalog's standards, shared by the command line, the HTTP face and the federation.
//!
//! - [`query`]: the one search model ([`Query`]) used by `orrery search`, the API and federated
//!   search, with its limits checked by [`Query::validate`].
//! - [`sky`]: positions as unit vectors, cones and the boxes that bound them, correct across
//!   RA = 0/360 and at the poles.
//! - [`table`]: the tables a node serves over TAP, the one list the VOSI tables document,
//!   `TAP_SCHEMA` and the ADQL checks are made from; [`obscore`] the columns of
//!   `ivoa.obscore`; [`tap_schema`] the five `TAP_SCHEMA` tables and their rows.
//! - [`adql`]: the ADQL subset a node answers, parsed into a checked [`adql::Select`]; anything
//!   else is refused with words that say what is unsupported.
//! - [`votable`]: VOTable documents for results and errors, and the VOSI and UWS documents a TAP
//!   service publishes.
//!
//! Nothing here touches a file, a socket or a database.

pub mod adql;
pub mod obscore;
pub mod query;
pub mod sky;
pub mod table;
pub mod tap_schema;
pub mod votable;

pub use query::{
    Cone, Facet, FacetCount, FederatedResults, Hit, Page, Query, QueryError, SearchResults, Sort,
    TimeRange,
};

/// A value in a result row or a query parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (SQL NULL; an empty VOTable cell).
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// Text.
    Text(String),
}
