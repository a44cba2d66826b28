//! Fuzz target: any bytes through decoding, parsing, lowering and rendering must give a
//! workflow or diagnostics, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spade::diag::SourceMap;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let mut sources = SourceMap::new();
    // A directory with no files: `!include` keys fail with a diagnostic instead of reading.
    let path = Path::new("/nonexistent-spade-fuzz/fuzz.dig");
    let (_, diags) = spade::dig::load_source(
        &mut sources,
        Path::new("/nonexistent-spade-fuzz"),
        path,
        data.to_vec(),
    );
    for d in &diags {
        let _ = d.render(&sources);
    }
});
