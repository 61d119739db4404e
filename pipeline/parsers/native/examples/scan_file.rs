//! Scan a file of lines with the library, for profiling without Python:
//!     cargo run --release --example scan_file -- FILE [REPEAT]
use fireplot_netfilter::{scan, Settings, YearRule, NCOLS, NDICTS};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&args[1]).expect("read the file");
    let repeat: usize = args.get(2).map_or(1, |r| r.parse().expect("a number"));
    let mut offsets = vec![0i32];
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            offsets.push(i as i32);
        }
    }
    // Lines without their newlines: each line starts after the previous newline.
    let n = offsets.len() - 1;
    let starts: Vec<i32> = (0..n).map(|i| if i == 0 { 0 } else { offsets[i] + 1 }).collect();
    let mut text = Vec::new();
    let mut flat = vec![0i32];
    for i in 0..n {
        text.extend_from_slice(&data[starts[i] as usize..offsets[i + 1] as usize]);
        flat.push(text.len() as i32);
    }
    let years = YearRule { latest_year: 2024, latest_key: (6 * 32 + 16) * 86_400, leap_before: 2020, leap_latest: 2024 };
    let mut rows = vec![0i32; NCOLS * n];
    let mut ts = vec![0i64; n];
    let mut dict_offsets = vec![0i32; NDICTS * (n + 1)];
    let mut dict_data = vec![0u8; NDICTS * text.len().max(1)];
    let mut sizes = vec![0i64; 2 * NDICTS];
    let started = std::time::Instant::now();
    let mut claimed = 0;
    for _ in 0..repeat {
        claimed = scan(&text, &flat, Settings { years, alone: true }, &mut rows, &mut ts, &mut dict_offsets, &mut dict_data, &mut sizes).expect("scan").unwrap_or(0);
    }
    let per_line = started.elapsed().as_secs_f64() / (repeat * n) as f64;
    println!("{claimed} of {n} lines claimed, {:.3} us/line", per_line * 1e6);
}
