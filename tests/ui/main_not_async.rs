#[solo::main]
fn main() {}
