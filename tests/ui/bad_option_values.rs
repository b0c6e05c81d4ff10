#[solo::test(backend = "epoll")]
async fn backend_that_does_not_exist() {}

#[solo::test(clock = "fake")]
async fn clock_that_does_not_exist() {}

#[solo::test(timeout = "30")]
async fn timeout_without_a_unit() {}

#[solo::test(timeout = 30)]
async fn timeout_not_a_string() {}

#[solo::test(timeout = "0s")]
async fn timeout_zero() {}

#[solo::test(debug = "yes")]
async fn debug_not_a_bool() {}

#[solo::test(backend)]
async fn backend_without_a_value() {}

#[solo::test(debug, debug)]
async fn an_option_twice() {}

#[solo::test(crate = "not a path")]
async fn crate_not_a_path() {}

fn main() {}
