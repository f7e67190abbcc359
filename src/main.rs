use clap::Parser;

fn main() {
    // Every usage error exits with status 1, like every other error; help and
    // version go to stdout with status 0.
    let cli = match cellc::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    std::process::exit(cellc::cli::main_with(cli));
}
