//! The HTTP tracker protocol (BEP 3, 7, 23): request heads, announce and scrape queries, and
//! response bodies, all sans-IO.

pub mod head;
pub mod query;
pub mod response;
