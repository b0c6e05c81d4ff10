#[solo::main]
async fn entry<T>() {}

#[solo::test]
async fn generic_test<T>() {}

#[solo::test]
async fn where_clause()
where
    u8: Copy,
{
}

fn main() {}
