//! A DNS responder on 127.0.0.1 for tests of DNS-driven routing: SIP's RFC 3263 (NAPTR,
//! SRV, A) and XMPP's SRV lookup (RFC 6120 s3.2.1). It answers every query from a zone the
//! test may change while it runs (NOERROR with no answer for names it does not hold) and
//! reports each query as `"<name> <type>"` on a channel, so a test can assert what was
//! asked. Messages are built with hickory's protocol types: no second DNS codec.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, OpCode};
use hickory_resolver::proto::rr::rdata::{A, NAPTR, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Records by (name, type).
pub type Zone = HashMap<(Name, RecordType), Vec<RData>>;

/// A fully qualified name (`"_sip._udp.example.test."`).
pub fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("a DNS name")
}

/// A NAPTR record with the `S` flag (RFC 3403; RFC 3263 s4.1).
pub fn naptr(order: u16, pref: u16, service: &str, replacement: &str) -> RData {
    RData::NAPTR(NAPTR::new(
        order,
        pref,
        b"S".to_vec().into_boxed_slice(),
        service.as_bytes().to_vec().into_boxed_slice(),
        Vec::new().into_boxed_slice(),
        name(replacement),
    ))
}

/// An SRV record (RFC 2782).
pub fn srv(priority: u16, weight: u16, port: u16, target: &str) -> RData {
    RData::SRV(SRV::new(priority, weight, port, name(target)))
}

/// A zone holding one record, `SRV _xmpp-server._tcp.<domain>. -> localhost:<port>`: an
/// XMPP server looking up `domain` for s2s (RFC 6120 s3.2.1) connects to 127.0.0.1:`port`.
pub fn xmpp_server_zone(domain: &str, port: u16) -> Zone {
    Zone::from([(
        (
            name(&format!("_xmpp-server._tcp.{domain}.")),
            RecordType::SRV,
        ),
        vec![srv(0, 5, port, "localhost.")],
    )])
}

/// An A record for 127.0.0.1.
pub fn a_localhost() -> RData {
    RData::A(A(Ipv4Addr::LOCALHOST))
}

/// Starts a responder answering from `zone`; returns its address and the queries it gets.
/// It runs until the runtime ends.
pub async fn responder(zone: Arc<Mutex<Zone>>) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    responder_on("127.0.0.1:0".parse().expect("an address"), zone)
        .await
        .expect("bind the DNS responder")
}

/// As [`responder`], on the UDP address `addr` (a fixed port a peer is configured to ask).
pub async fn responder_on(
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
) -> std::io::Result<(SocketAddr, mpsc::UnboundedReceiver<String>)> {
    let sock = UdpSocket::bind(addr).await?;
    let addr = sock.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            r.metadata.authoritative = true;
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.queries = q.queries.clone();
            for query in &q.queries {
                let _ = tx.send(format!("{} {:?}", query.name(), query.query_type()));
                let key = (query.name().clone(), query.query_type());
                let answers = zone
                    .lock()
                    .expect("zone lock")
                    .get(&key)
                    .cloned()
                    .unwrap_or_default();
                for data in answers {
                    r.add_answer(Record::from_rdata(query.name().clone(), 60, data));
                }
            }
            if let Ok(b) = r.to_vec() {
                let _ = sock.send_to(&b, peer).await;
            }
        }
    });
    Ok((addr, rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Query;

    #[tokio::test]
    async fn answers_from_the_zone_and_reports_each_query() {
        let srv_name = name("_xmpp-server._tcp.b.test.");
        let zone = xmpp_server_zone("b.test", 5269);
        let (addr, mut queries) = responder(Arc::new(Mutex::new(zone))).await;
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for (qname, qtype, answers) in [
            (srv_name.clone(), RecordType::SRV, 1),
            (name("missing.test."), RecordType::A, 0),
        ] {
            let mut q = Message::query();
            q.add_query(Query::query(qname.clone(), qtype));
            sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
            let mut buf = [0u8; 1500];
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            let r = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(r.answers.len(), answers, "{qname} {qtype:?}");
            assert_eq!(queries.recv().await.unwrap(), format!("{qname} {qtype:?}"));
        }
    }
}
