//! Tests of the wire formats and the server logic against BEP layouts, plus the "never
//! panics on arbitrary bytes" properties the fuzz targets also check.

mod http;
mod server;
mod udp;
