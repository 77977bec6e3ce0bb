//! The web server's request handlers: any method, path, query, token and body, sent through
//! the real router (token check and body limit included) over a small session of eight
//! gz1-mini images. The first byte picks the method and whether the token is sent; the rest
//! is `PATH\nBODY`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| anomalymatch_fuzz::server::request(data));
