//! ARP responder (REFERENCE.md §2.3): we claim every IPv4 address on the
//! link, so the guest sends all its IPv4 traffic to our MAC, whatever the
//! address it resolves (gateway, other hosts on the "subnet", anything).
//!
//! Two kinds of request get no answer, as upstream: gratuitous
//! announcements (sender IP == target IP != 0: claiming the address would
//! look like a conflict to the guest), and requests for the guest's own
//! assigned address (duplicate address detection must succeed). Other
//! operations (replies, RARP...) are ignored. Without IPv4 there is nothing
//! to answer.
//!
//! Invariants: the request is parsed through `etherparse`'s checked ARP
//! view; a frame whose ethertype says ARP but whose body is not a complete
//! Ethernet/IPv4 ARP packet is refused as malformed; the reply (42 bytes,
//! unpadded like upstream's) never exceeds `out`.
//! Neighbours: dispatched from `engine` for [`crate::wire::FrameClass::Arp`];
//! reads `conf` and [`LinkFacts`] only.

use etherparse::{
    ArpEthIpv4Packet, ArpOperation, ArpPacketSlice, EtherType, Ethernet2Header, Ethernet2Slice,
};

use super::{Answer, LinkFacts, Refused};
use crate::conf::Config;

const MALFORMED: Refused = Refused::Malformed("ARP");

/// Length of a reply: Ethernet header plus an Ethernet/IPv4 ARP packet.
const REPLY_LEN: usize = Ethernet2Header::LEN + ArpEthIpv4Packet::LEN;

/// Answers an ARP request in `frame` with our MAC, writing the reply frame
/// into `out`.
pub fn answer(config: &Config, link: &LinkFacts, frame: &[u8], out: &mut [u8]) -> Answer {
    let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(frame) else {
        return Ok(None);
    };
    if eth.ether_type() != EtherType::ARP {
        return Ok(None);
    }
    let Some(ip4) = &config.ip4 else {
        return Ok(None);
    };
    let request = parse(eth.payload_slice())?;
    if request.operation != ArpOperation::REQUEST || !wants_answer(&request, ip4.addr.octets()) {
        return Ok(None);
    }
    Ok(write_reply(link, eth.source(), &request, out))
}

/// The Ethernet/IPv4 ARP packet at the start of `payload` (Ethernet
/// padding may follow it).
fn parse(payload: &[u8]) -> Result<ArpEthIpv4Packet, Refused> {
    let slice = ArpPacketSlice::from_slice(payload).map_err(|_| MALFORMED)?;
    slice.to_packet().try_eth_ipv4().map_err(|_| MALFORMED)
}

/// Whether a request deserves a reply (see the module comment).
fn wants_answer(request: &ArpEthIpv4Packet, guest_addr: [u8; 4]) -> bool {
    let announcement = request.sender_ipv4 != [0; 4] && request.sender_ipv4 == request.target_ipv4;
    !announcement && request.target_ipv4 != guest_addr
}

/// Writes "target IP is at our MAC" back to the requester.
fn write_reply(
    link: &LinkFacts,
    requester: [u8; 6],
    request: &ArpEthIpv4Packet,
    out: &mut [u8],
) -> Option<usize> {
    let eth = Ethernet2Header {
        source: link.our_mac,
        destination: requester,
        ether_type: EtherType::ARP,
    };
    let reply = ArpEthIpv4Packet {
        operation: ArpOperation::REPLY,
        sender_mac: link.our_mac,
        sender_ipv4: request.target_ipv4,
        target_mac: request.sender_mac,
        target_ipv4: request.sender_ipv4,
    };
    let out = out.get_mut(..REPLY_LEN)?;
    let (eth_out, arp_out) = out.split_at_mut(Ethernet2Header::LEN);
    eth_out.copy_from_slice(&eth.to_bytes());
    arp_out.copy_from_slice(&reply.to_bytes());
    Some(REPLY_LEN)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::conf::{Mode, fixture};

    const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn config() -> Config {
        fixture::config(Mode::Passt, &[])
    }

    fn request_with(op: u16, sender_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
        let eth = Ethernet2Header {
            source: GUEST_MAC,
            destination: [0xff; 6],
            ether_type: EtherType::ARP,
        };
        let arp = ArpEthIpv4Packet {
            operation: ArpOperation(op),
            sender_mac: GUEST_MAC,
            sender_ipv4: sender_ip,
            target_mac: [0; 6],
            target_ipv4: target_ip,
        };
        [&eth.to_bytes()[..], &arp.to_bytes()[..]].concat()
    }

    fn request(target_ip: [u8; 4]) -> Vec<u8> {
        request_with(1, [192, 0, 2, 10], target_ip)
    }

    fn run(config: &Config, frame: &[u8]) -> (Answer, Vec<u8>) {
        let mut out = vec![0; super::super::REPLY_MAX];
        let answer = answer(config, &LinkFacts::new(config), frame, &mut out);
        let len = answer.ok().flatten().unwrap_or(0);
        out.truncate(len);
        (answer, out)
    }

    #[test]
    fn request_gets_our_mac_for_the_requested_address() {
        let config = config();
        let (answer, reply) = run(&config, &request([192, 0, 2, 1]));
        assert_eq!(answer, Ok(Some(REPLY_LEN)));
        let (eth, rest) = Ethernet2Header::from_slice(&reply).unwrap();
        assert_eq!(eth.destination, GUEST_MAC);
        assert_eq!(eth.source, config.our_mac);
        assert_eq!(eth.ether_type, EtherType::ARP);
        let arp = parse(rest).unwrap();
        assert_eq!(arp.operation, ArpOperation::REPLY);
        assert_eq!(arp.sender_mac, config.our_mac);
        assert_eq!(arp.sender_ipv4_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(arp.target_mac, GUEST_MAC);
        assert_eq!(arp.target_ipv4_addr(), Ipv4Addr::new(192, 0, 2, 10));
    }

    #[test]
    fn any_address_and_probes_are_answered() {
        let config = config();
        for target in [[198, 51, 100, 7], [10, 0, 0, 1], [0, 0, 0, 0]] {
            assert_eq!(
                run(&config, &request(target)).0,
                Ok(Some(REPLY_LEN)),
                "{target:?}"
            );
        }
        let probe = request_with(1, [0; 4], [192, 0, 2, 1]);
        assert_eq!(run(&config, &probe).0, Ok(Some(REPLY_LEN)));
    }

    #[test]
    fn ethernet_padding_is_ignored() {
        let mut frame = request([192, 0, 2, 1]);
        frame.resize(60, 0);
        assert_eq!(run(&config(), &frame).0, Ok(Some(REPLY_LEN)));
    }

    #[test]
    fn announcements_and_the_guest_address_get_no_answer() {
        let config = config();
        let guest = config.ip4.as_ref().unwrap().addr.octets();
        assert_eq!(run(&config, &request(guest)).0, Ok(None));
        let announcement = request_with(1, [192, 0, 2, 77], [192, 0, 2, 77]);
        assert_eq!(run(&config, &announcement).0, Ok(None));
    }

    #[test]
    fn other_operations_frames_and_families_are_not_ours() {
        let config = config();
        let reply = request_with(2, [192, 0, 2, 10], [192, 0, 2, 1]);
        assert_eq!(run(&config, &reply).0, Ok(None));
        let mut ipv4 = request([192, 0, 2, 1]);
        ipv4[12..14].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
        assert_eq!(run(&config, &ipv4).0, Ok(None));
        let v6_only = fixture::config(Mode::Passt, &["-6"]);
        assert_eq!(run(&v6_only, &request([192, 0, 2, 1])).0, Ok(None));
    }

    #[test]
    fn wrong_types_and_sizes_are_malformed() {
        let config = config();
        // (offset in the frame, bad value): hardware type, protocol type,
        // hardware size, protocol size.
        for (offset, value) in [(14, 6), (16, 0x86), (18, 8), (19, 16)] {
            let mut frame = request([192, 0, 2, 1]);
            frame[offset] = value;
            frame.resize(14 + 8 + 2 * 255 + 2 * 255, 0);
            assert_eq!(
                run(&config, &frame).0,
                Err(MALFORMED),
                "byte {offset} = {value}"
            );
        }
    }

    #[test]
    fn every_truncation_is_refused_or_ignored() {
        let config = config();
        let frame = request([192, 0, 2, 1]);
        for len in 0..frame.len() {
            let expected = if len < Ethernet2Header::LEN {
                Ok(None)
            } else {
                Err(MALFORMED)
            };
            assert_eq!(run(&config, &frame[..len]).0, expected, "length {len}");
        }
    }

    #[test]
    fn a_short_output_buffer_gets_no_reply() {
        let config = config();
        let mut out = [0; REPLY_LEN - 1];
        let link = LinkFacts::new(&config);
        assert_eq!(
            answer(&config, &link, &request([192, 0, 2, 1]), &mut out),
            Ok(None)
        );
    }
}
