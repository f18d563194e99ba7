//! `gateway-demo` runs end to end as a user would run it, says what
//! happened, and leaves nothing running.

use std::process::Command;

#[test]
fn the_demo_runs_and_reports_the_shared_limit_and_the_single_flight() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-demo")).output().expect("gateway-demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("limits shared through Redis"),
        "redis-server is on PATH here:\n{stdout}"
    );
    assert!(stdout.contains("1000 admitted, 500 answered 429"), "{stdout}");
    assert!(stdout.contains("1000 answered, 1 upstream request(s)"), "{stdout}");
    assert!(stdout.contains("stopping the gateways"));
}
