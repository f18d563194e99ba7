//! Routing by consistent hash of the route key with bounded loads: 10
//! upstreams and 1,000,000 route keys; a key's upstream is the same for
//! every gateway instance and after restarts (it depends only on the
//! servers), removing an upstream moves only its keys, and with bounded
//! loads no upstream has more than c x the mean in flight (plus one).

use std::net::SocketAddr;

use sysblocks_gateway::proxy::Balancer;

fn servers(n: u16) -> Vec<SocketAddr> {
    (0..n).map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i))).collect()
}

#[test]
fn a_keys_upstream_is_stable_and_a_removal_moves_only_its_keys() {
    let all = servers(10);
    let a = Balancer::new(&all, 1.25);
    let mut reversed = all.clone();
    reversed.reverse();
    let b = Balancer::new(&reversed, 1.25); // another instance, servers listed otherwise
    let removed = all[3];
    let without: Vec<SocketAddr> = all.iter().copied().filter(|s| *s != removed).collect();
    let c = Balancer::new(&without, 1.25);
    let mut moved = 0u32;
    for k in 0..1_000_000u32 {
        let key = format!("/users/{k}");
        let here = a.server_for(key.as_bytes()).unwrap();
        assert_eq!(Some(here), b.server_for(key.as_bytes()), "{key}");
        let after = c.server_for(key.as_bytes()).unwrap();
        if after != here {
            assert_eq!(here, removed, "{key} moved from {here}, which stayed");
            moved += 1;
        }
    }
    // About a tenth of the keys were on the removed upstream.
    assert!((70_000..=130_000).contains(&moved), "{moved} keys moved");
}

#[test]
fn bounded_loads_keep_every_upstream_under_c_times_the_mean_plus_one() {
    let c = 1.25;
    let balancer = Balancer::new(&servers(10), c);
    let mut held = Vec::new();
    // Skewed keys: most requests for a few hot keys.
    for i in 0..2_000u32 {
        let key = if i % 10 < 8 { format!("/hot/{}", i % 3) } else { format!("/cold/{i}") };
        held.push(balancer.pick(key.as_bytes()).unwrap());
        let loads = balancer.loads();
        let total: u64 = loads.iter().sum();
        let bound = (c * total as f64 / 10.0).ceil() + 1.0;
        assert!(loads.iter().all(|&l| l as f64 <= bound), "{loads:?} over {bound}");
        if i % 7 == 0 {
            held.swap_remove(0); // a request finishes
        }
    }
    drop(held);
    assert!(balancer.loads().iter().all(|&l| l == 0), "every finished request is uncounted");
}
