mod cli;

fn main() -> anyhow::Result<()> {
    cli::main()
}
