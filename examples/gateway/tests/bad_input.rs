//! Bad input gets a clear answer and nothing breaks: oversized headers
//! (431) and bodies (413), two Content-Lengths (400),
//! a client too slow to send its headers (cut off) or its body (408), a
//! chunked body over the limit (413), request smuggling (400), hop-by-hop
//! headers not forwarded, and a limit key that is not text.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sysblocks_gateway::upstream_sim::UpstreamSim;

async fn gateway(up: &UpstreamSim) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let server = "max_header_bytes = 8192\nmax_body_bytes = 1000\n\
                  header_timeout_ms = 300\nbody_timeout_ms = 300";
    let limit =
        r#"limit = { key = "header:x-api-key", algorithm = "token_bucket", rate = "1000/s" }"#;
    common::gateway(up.address(), server, limit).await
}

/// Sends raw bytes and reads what comes back until the server closes or
/// 5 s pass (on a blocking thread: the server runs on the test's runtime).
async fn raw(address: SocketAddr, bytes: Vec<u8>) -> String {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = stream.write_all(&bytes);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap()
}

fn status(answer: &str) -> &str {
    answer.split_whitespace().nth(1).unwrap_or("(closed without an answer)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_answers() {
    let up = UpstreamSim::start("up", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (gw, _stop) = gateway(&up).await;

    let huge = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(status(&raw(gw, huge.into_bytes()).await), "431");

    let big_body =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&raw(gw, big_body.into()).await), "413");

    let two_lengths =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde";
    assert_eq!(status(&raw(gw, two_lengths.into()).await), "400");

    let garbage = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n".to_vec();
    assert_eq!(status(&raw(gw, garbage).await), "400");

    // A client that never finishes its headers is cut off after the
    // header timeout (300 ms; 10x that is the bound checked).
    let started = Instant::now();
    let slow = raw(gw, b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ".to_vec()).await;
    assert!(started.elapsed() < Duration::from_secs(3), "cut off late: {:?}", started.elapsed());
    assert!(slow.is_empty() || status(&slow) == "408", "{slow}");

    // Hop-by-hop headers, and those Connection names, are not forwarded;
    // a limit key that is not text is no key (the shared budget), not a crash.
    let mut hop = b"GET /x?headers=1 HTTP/1.1\r\nHost: a\r\nConnection: close, x-private\r\nX-Private: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Api-Key: \xff\xfe\r\nX-Kept: 1\r\n\r\n".to_vec();
    let answer = raw(gw, std::mem::take(&mut hop)).await;
    assert_eq!(status(&answer), "200", "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_ascii_lowercase();
    assert!(body.contains("x-kept"), "{body}");
    for name in ["x-private", "keep-alive", "te\n", "connection"] {
        assert!(!body.contains(name), "{name} was forwarded: {body}");
    }
    assert!(body.contains("x-forwarded-for"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_and_bad_bodies_are_refused() {
    let up = UpstreamSim::start("up", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (gw, _stop) = gateway(&up).await;

    // CL.TE and TE.CL: the body below hides a second request ("GET
    // /smuggled") for a server that would frame by the other header. Both
    // orders are refused, as is a conflict on a later request of a
    // kept-alive connection, and the upstream never sees a hidden request.
    let hidden = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    for head in [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 45\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 45\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let served = up.served();
        let answer = raw(gw, format!("{head}{hidden}").into_bytes()).await;
        let statuses: Vec<&str> =
            answer.match_indices("HTTP/1.1 ").map(|(i, _)| &answer[i + 9..i + 12]).collect();
        let expected =
            if head.starts_with("GET /first") { vec!["200", "400"] } else { vec!["400"] };
        assert_eq!(statuses, expected, "{answer}");
        assert_eq!(up.served() - served, expected.len() as u64 - 1, "{answer}");
    }

    // Chunked bodies (no length up front) are held to the byte limit too,
    // while a small one goes through.
    let chunk = format!("{:x}\r\n{}\r\n", 600, "b".repeat(600));
    let big = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}{chunk}0\r\n\r\n"
    );
    assert_eq!(status(&raw(gw, big.into_bytes()).await), "413");
    let small = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}0\r\n\r\n"
    );
    assert_eq!(status(&raw(gw, small.into_bytes()).await), "200");

    // A body that stops coming gets 408 once the body timeout (300 ms)
    // passes; the gateway reads bodies before it picks an upstream, so no
    // upstream waits on the slow client (nor on a refused body).
    let served = up.served();
    let started = Instant::now();
    let slow = raw(
        gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly a few bytes".to_vec(),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3), "cut off late: {:?}", started.elapsed());
    assert_eq!(status(&slow), "408", "{slow}");
    assert_eq!(up.served(), served);
    assert_eq!(
        status(&raw(gw, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec()).await),
        "200"
    );
}
