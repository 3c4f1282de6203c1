//! The `kata-runtime` binary: everything lives in the library.

fn main() {
    std::process::exit(kata_runtime::app::run(std::env::args_os()));
}
