#[solo::main]
struct NotAFn;

fn main() {}
