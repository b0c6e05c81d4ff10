//! The monitor through real sockets: `examples/monitor` driven by a client (`ps`, `where`,
//! `stats` while `block` holds the loop, then `cancel`; HTTP `/metrics`), and the bad input of
//! issue 15 that is about the protocol: unknown commands, bad and finished ids, a 10 KiB line,
//! 50 clients at once, a client that leaves mid-reply. The loop runs on the test thread; clients
//! run on other threads and stop the loop when they are done. Nothing waits for a fixed time: a
//! client that waits for a state asks again until it sees it (the watchdog bounds the test).
//! `tests/monitor_states.rs` has the loop's states and the switch.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

mod common;
mod monitor_client;

use monitor_client::*;

#[allow(dead_code)]
#[path = "../examples/monitor.rs"]
mod monitor_example;

#[test]
fn the_example_answers_ps_where_stats_while_block_holds_the_loop_then_cancel() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    let app = monitor_example::start(&el.handle(), "127.0.0.1:0").unwrap();
    let (ps, where_, stats, cancel, later, blocked, metrics) = with_client(&el, move |addr| {
        // A client of the app, so that a client handler exists.
        let mut app_client = TcpStream::connect(app).unwrap();
        app_client.write_all(b"hello\n").unwrap();
        let mut echo = [0u8; 6];
        app_client.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"HELLO\n");

        let mut c = Client::connect(&addr);
        let ps = loop {
            let ps = c.ask("ps");
            // Every task has been polled once and is suspended somewhere.
            if ["ticker", "slow job", "acceptor", "client handler 1"]
                .iter()
                .all(|n| {
                    ps.lines()
                        .any(|l| l.contains(n) && !l.trim_end().ends_with(" -"))
                })
            {
                break ps;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let slow = id_of(&ps, "slow job");

        // Another client blocks the loop for 2 s.
        let mut blocker = Client::connect(&addr);
        blocker.send("block 2");
        let ps = until_blocked(&mut c);
        let where_ = c.ask(&format!("where {slow}"));
        let stats = c.ask("stats");
        let cancel = c.ask(&format!("cancel {slow}"));
        let later = c.reply();
        let blocked = format!("{}{}", blocker.reply(), blocker.reply());
        let metrics = http_get(&addr, "/metrics");
        // The cancelled task leaves the table when the loop drops its future.
        while !c.ask(&format!("where {slow}")).contains("has finished") {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c.ask("quit"), "bye\n");
        (ps, where_, stats, cancel, later, blocked, metrics)
    });
    assert!(ps.contains("the loop is blocked"), "{ps}");
    for (name, waits) in [
        ("ticker", "sleep"),
        ("slow job", "sleep"),
        ("acceptor", "read on fd"),
        ("client handler 1", "read on fd"),
    ] {
        let row = ps.lines().find(|l| l.contains(name)).unwrap();
        assert!(row.contains(waits), "{name} waits on {waits}: {row}");
        assert!(row.contains("examples/monitor.rs:"), "{row}");
    }
    assert!(
        where_.contains("(slow job), waiting; spawned at "),
        "{where_}"
    );
    assert!(where_.contains("examples/monitor.rs:"), "{where_}");
    assert!(
        where_.contains("sleep,")
            && where_
                .lines()
                .any(|l| l.trim_start().starts_with("at ") && l.contains("examples/monitor.rs:")),
        "{where_}"
    );
    assert!(stats.contains("loop: in threadsafe callback"), "{stats}");
    for h in [
        "task poll",
        "callback",
        "iteration",
        "timer lateness",
        "wake-to-run",
    ] {
        assert!(stats.lines().any(|l| l.starts_with(h)), "{h} in {stats}");
    }
    assert!(cancel.contains("queued; the loop is blocked"), "{cancel}");
    assert!(
        later.starts_with("[later, from the loop] cancel"),
        "{later}"
    );
    assert!(later.contains("(slow job) cancelled"), "{later}");
    assert!(
        blocked.contains("queued") && blocked.contains("the loop was blocked for 2 s"),
        "{blocked}"
    );
    check_prometheus(&metrics);
}

#[test]
fn bad_commands_and_bad_ids_get_an_error_and_the_connection_stays_open() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    let h = el.handle();
    let forever = h.spawn_named("forever", std::future::pending::<()>());
    let _done = h.spawn_named("done", async {});
    let replies = with_client(&el, |addr| {
        let mut c = Client::connect(&addr);
        // Until `done` has run (and left the table), and `forever` has been polled.
        while !c.ask("ps").starts_with("1 task(s)") {
            std::thread::sleep(Duration::from_millis(5));
        }
        let asks = [
            "frobnicate now",
            "where",
            "where abc",
            "where -1",
            "where 99",
            "where 2",
            "cancel xyz",
            "cancel 99",
            "cancel 2",
            "signal",
            "signal NOPE",
            "trace",
            "trace zero /tmp/x.json",
            "trace 1 /nonexistent-dir/solo/trace.json",
        ];
        let mut replies: Vec<_> = asks.iter().map(|a| (a.to_string(), c.ask(a))).collect();
        // A blank line gets no reply: the next reply is the next command's.
        c.send("   ");
        replies.push(("where 1".to_string(), c.ask("where 1")));
        replies
    });
    let get = |q: &str| &replies.iter().find(|(a, _)| a == q).unwrap().1;
    let unknown = get("frobnicate now");
    assert!(
        unknown.starts_with("error: unknown command `frobnicate`"),
        "{unknown}"
    );
    assert!(
        unknown.contains("where ID") && unknown.contains("trace SECONDS PATH"),
        "{unknown}"
    );
    for q in ["where", "where abc", "where -1", "cancel xyz"] {
        assert!(get(q).contains("needs a task id"), "{q}: {}", get(q));
    }
    for q in ["where 99", "cancel 99"] {
        assert!(
            get(q).starts_with("error: no task 99: ids so far go from 1 to 2"),
            "{q}: {}",
            get(q)
        );
    }
    for q in ["where 2", "cancel 2"] {
        assert!(
            get(q).starts_with("error: task 2 has finished"),
            "{q}: {}",
            get(q)
        );
    }
    assert!(get("signal").contains("needs a signal name"));
    assert!(get("signal NOPE").contains("known: HUP INT"));
    assert!(get("trace").starts_with("error: usage: trace SECONDS PATH"));
    assert!(get("trace zero /tmp/x.json").starts_with("error: usage"));
    let unwritable = get("trace 1 /nonexistent-dir/solo/trace.json");
    assert!(
        unwritable.starts_with("error: cannot write /nonexistent-dir/solo/trace.json"),
        "{unwritable}"
    );
    let w = get("where 1");
    assert!(w.starts_with("task 1 (forever), waiting"), "{w}");
    assert!(w.contains("not at a solo future"), "{w}");
    drop(forever);
}

#[test]
fn a_10_kib_line_is_refused_and_the_connection_goes_on() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    let (long, after, eof_line) = with_client(&el, |addr| {
        let mut c = Client::connect(&addr);
        let line = "x".repeat(10 * 1024);
        let long = c.ask(&line);
        let after = c.ask("ps");
        // A long line without its newline, then the end of the connection: answered too.
        c.w.write_all(line.as_bytes()).unwrap();
        (c.finish)();
        (long, after, c.reply())
    });
    assert!(
        long.starts_with("error: line too long (over 4096 bytes)"),
        "{long}"
    );
    assert!(
        long.contains("commands (one per line"),
        "the help follows: {long}"
    );
    assert!(after.contains("task(s); the loop is"), "{after}");
    assert!(eof_line.starts_with("error: line too long"), "{eof_line}");
}

#[test]
fn fifty_clients_at_once_are_all_answered() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    el.handle()
        .spawn_named("forever", std::future::pending::<()>());
    let answered = with_client(&el, |addr| {
        let clients: Vec<_> = (0..50)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let mut c = Client::connect(&addr);
                    c.send("ps");
                    c.send("stats");
                    c.send("metrics");
                    let (ps, stats, metrics) = (c.reply(), c.reply(), c.reply());
                    ps.contains("forever")
                        && stats.contains("histogram")
                        && metrics.contains("solo_tasks 1")
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count()
    });
    assert_eq!(answered, 50);
}

#[test]
fn a_client_that_leaves_mid_reply_costs_nothing() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    let h = el.handle();
    h.monitor_command("big", "big: 8 MB of text", |_| "y".repeat(8 << 20))
        .unwrap();
    let (first, ps) = with_client(&el, |addr| {
        for _ in 0..3 {
            let mut c = Client::connect(&addr);
            c.send("big");
            let mut some = [0u8; 1024];
            c.r.read_exact(&mut some).unwrap(); // the reply has begun...
            drop(c); // ...and the client is gone
        }
        let mut c = Client::connect(&addr);
        (c.ask("help"), c.ask("ps"))
    });
    assert!(first.contains("big: 8 MB of text"), "{first}");
    assert!(ps.contains("the loop is"), "{ps}");
}
