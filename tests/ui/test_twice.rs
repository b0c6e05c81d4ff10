#[solo::test]
#[test]
async fn registered_twice() {}

fn main() {}
