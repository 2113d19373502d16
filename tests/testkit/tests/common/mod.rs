//! Shared by the testkit's own tests.

use cpim_gateway::config::{Config, QueueSection};
use cpim_sip::app::config::{SipConfig, SipUser};
use cpim_sip::app::digest::Algorithm;

/// A SIP-only gateway serving `sip.test` with alice and bob (passwords `alicepw`, `bobpw`,
/// MD5 digest) and no store-and-forward queue.
pub fn sip_only_config() -> Config {
    Config {
        adapters: vec!["sip".into()],
        sip: SipConfig {
            domains: vec!["sip.test".into()],
            auth_algorithms: vec![Algorithm::Md5],
            users: ["alice", "bob"]
                .iter()
                .map(|u| SipUser {
                    username: (*u).into(),
                    password: Some(format!("{u}pw")),
                    ..SipUser::default()
                })
                .collect(),
            ..SipConfig::default()
        },
        queue: QueueSection {
            enabled: false,
            ..QueueSection::default()
        },
        ..Config::default()
    }
}
