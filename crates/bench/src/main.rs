//! The `nixcap-bench` program: runs the benchmark cases and prints the table
//! (see the library's documentation and `docs/BENCHMARKS.md`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use nixcap_bench::error::Error;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "record-with-library") {
        let [_, capture, listen, upstream] = args.as_slice() else {
            eprintln!("usage: nixcap-bench record-with-library CAPTURE LISTEN UPSTREAM");
            return ExitCode::from(2);
        };
        return match nixcap_bench::record_with_library(
            &PathBuf::from(capture),
            &PathBuf::from(listen),
            &PathBuf::from(upstream),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("nixcap-bench record-with-library: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let parsed = match nixcap_bench::Args::parse(&args) {
        Ok(parsed) => parsed,
        Err(Error::Usage(text)) => {
            eprintln!("{text}");
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("nixcap-bench: {error}");
            return ExitCode::from(2);
        }
    };
    match nixcap_bench::run(&parsed) {
        Ok(results) => {
            print!("{}", results.markdown());
            ExitCode::SUCCESS
        }
        Err(error) => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("nixcap-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
