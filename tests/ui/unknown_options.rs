#[solo::test(verbose)]
async fn unknown_flag() {}

#[solo::test(threads = 4)]
async fn unknown_key() {}

#[solo::test(solo::debug)]
async fn a_path() {}

fn main() {}
