use clap::Parser;

fn main() {
    let cli = cellc::cli::Cli::parse();
    std::process::exit(cellc::cli::main_with(cli));
}
