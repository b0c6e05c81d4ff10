// Arguments without `clock = "manual"`, even the clock itself.
#[solo::test]
async fn takes_a_number(n: u32) {
    drop(n);
}

#[solo::test]
async fn takes_the_clock_without_the_option(clock: solo::ManualClock) {
    drop(clock);
}

// With the option: one argument, the clock.
#[solo::test(clock = "manual")]
async fn takes_two(clock: solo::ManualClock, n: u32) {
    drop((clock, n));
}

struct S;

impl S {
    #[solo::test]
    async fn a_method(&self) {}
}

fn main() {}
