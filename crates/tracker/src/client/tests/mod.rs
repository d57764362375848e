//! Tests of the client side: formats against real bytes and BEP layouts, the announce state
//! machine under virtual time, and the "never panics on arbitrary bytes" properties the fuzz
//! targets also check.

mod announcer;
mod formats;
