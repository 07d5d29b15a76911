//! A relay in front of a shared cloud mail service (Microsoft 365's servers send for every
//! customer from the same addresses): with `[smtp] tenant_header`, mail from the allowed networks
//! must carry this organisation's tenant id; relay accounts that authenticate are trusted.

mod common;

use common::*;

const TENANT: &str = "7d3c2b1a-0000-4000-8000-00000000abcd";

fn with_tenant(header: Option<&str>) -> Vec<u8> {
    let mut data = Vec::new();
    if let Some(value) = header {
        data.extend_from_slice(format!("X-MS-Exchange-CrossTenant-Id: {value}\r\n").as_bytes());
    }
    data.extend(message("colleague@lumen.sch.uk", "", "tenant", "hello"));
    data
}

#[test]
fn only_this_organisations_tenant_may_relay_from_the_shared_network() {
    let dir = temp_dir("tenant");
    let relay = Relay::start(
        &dir,
        "dir:outbox",
        &format!(
            "[smtp]\ntenant_header = \"X-MS-Exchange-CrossTenant-Id\"\ntenant_ids = [\"{TENANT}\"]\n"
        ),
    );
    let from = "teacher@lumen.sch.uk";
    let to = ["colleague@lumen.sch.uk"];

    for refused in [None, Some("11111111-0000-4000-8000-000000000000")] {
        let r = send(relay.addr, from, &to, &with_tenant(refused));
        assert_eq!(r.0, 550, "{refused:?}: {r:?}");
        assert!(r.1.contains("5.7.1"), "{r:?}");
    }
    let r = send(
        relay.addr,
        from,
        &to,
        &with_tenant(Some(&TENANT.to_uppercase())),
    );
    assert_eq!(r.0, 250, "{r:?}");

    // A mail server that authenticates with a relay account needs no tenant header.
    relay.add_user("mailserver", "relay", "a long relay secret");
    let (mut c, _) = Client::connect(relay.addr);
    c.cmd("EHLO mta.lumen.sch.uk");
    let good = base64(b"\0mailserver\0a long relay secret");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {good}")).0, 235);
    let r = c.send(from, &to, &with_tenant(None));
    assert_eq!(r.0, 250, "{r:?}");

    // Exactly the two accepted messages arrive; nothing of the refused ones is kept.
    eventually("two deliveries", || {
        Some(()).filter(|()| outbox_files(&relay.outbox()).len() == 2)
    });
    assert!(relay.held_all().is_empty());
}

#[test]
fn a_tenant_header_without_ids_is_a_configuration_problem() {
    let dir = temp_dir("tenant-check");
    let config = write_config(
        &dir,
        "dir:outbox",
        "[smtp]\ntenant_header = \"X-MS-Exchange-CrossTenant-Id\"\n",
    );
    let out = hallpass(&config, &["check"], "");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hallpass.toml:") && text.contains("tenant_ids"),
        "{text}"
    );
}
