#[solo::test]
async unsafe fn unsafe_test() {}

fn main() {}
