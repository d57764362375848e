//! Fuzz target: the HTTP tracker parsers (request head, announce and scrape queries, and the
//! client-side response parsers) never panic on any bytes.
#![no_main]

use bitswarm_tracker::http::head::parse_request_head;
use bitswarm_tracker::http::query::{parse_announce_query, parse_scrape_query};
use bitswarm_tracker::client::http::parse_announce_response;
use bitswarm_tracker::http::response::parse_scrape;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(head)) = parse_request_head(data) {
        assert!(head.len <= data.len());
        let _ = parse_announce_query(head.query);
        let _ = parse_scrape_query(head.query);
    }
    let _ = parse_announce_query(data);
    let _ = parse_scrape_query(data);
    let _ = parse_announce_response(data);
    let _ = parse_scrape(data);
});
