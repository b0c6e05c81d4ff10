#[solo::main(clock = "manual", timeout = "1s")]
async fn main() {}
