//! The `--help` and `--version` texts.
//!
//! `--help` follows upstream's usage text (same options, order, defaults),
//! with the program name in place of argv\[0\]; upstream prints it on
//! stdout with `-h` (exit 0) and on stderr after a getopt error (exit 1).
//! `--version` keeps upstream's first line, `<prog> <version>`, which
//! callers parse. Neighbour: [`super::args`] returns these texts.

use super::Mode;

/// The `--version` text.
pub fn version(mode: Mode) -> String {
    format!(
        "{} {}\n\
         passt-rs: a Rust implementation of passt and pasta\n\
         License GPL-2.0-or-later <https://www.gnu.org/licenses/old-licenses/gpl-2.0.html>\n\
         This is free software: you are free to change and redistribute it.\n\
         There is NO WARRANTY, to the extent permitted by law.\n",
        mode.name(),
        env!("CARGO_PKG_VERSION")
    )
}

/// The `--help` text.
pub fn usage(mode: Mode) -> String {
    let prog = mode.name();
    let mut text = match mode {
        Mode::Passt => format!("Usage: {prog} [OPTION]...\n\n"),
        Mode::Pasta => format!(
            "Usage: {prog} [OPTION]... [COMMAND] [ARGS]...\n\
             \x20      {prog} [OPTION]... PID\n\
             \x20      {prog} [OPTION]... --netns [PATH|NAME]\n\
             \n\
             Without PID or --netns, run the given command or a\n\
             default shell in a new network and user namespace, and\n\
             connect it via pasta.\n\n"
        ),
    };
    text.push_str(COMMON_START);
    text.push_str(match mode {
        Mode::Passt => PASST_TRANSPORT,
        Mode::Pasta => PASTA_TRANSPORT,
    });
    text.push_str(ADDRESSES);
    text.push_str(match mode {
        Mode::Passt => PASST_DNS,
        Mode::Pasta => PASTA_DNS,
    });
    text.push_str(TRANSLATION_AND_SWITCHES);
    text.push_str(match mode {
        Mode::Passt => PASST_PORTS,
        Mode::Pasta => PASTA_PORTS,
    });
    text
}

const COMMON_START: &str = "\
  -d, --debug\t\tBe verbose
      --trace\t\tBe extra verbose, implies --debug
  -q, --quiet\t\tDon't print informational messages
  -f, --foreground\tDon't run in background
    default: run in background
  -l, --log-file PATH\tLog (only) to given file
  --log-size BYTES\tMaximum size of log file
    default: 1 MiB
  --runas UID|UID:GID \tRun as given UID, GID, which can be
    numeric, or login and group names
    default: drop to user \"nobody\"
  -h, --help\t\tDisplay this help message and exit
  --version\t\tShow version and exit
";

const PASST_TRANSPORT: &str = "\
  -s, --socket, --socket-path PATH\tUNIX domain socket path
    default: probe free path starting from /tmp/passt_1.socket
  --vhost-user\t\tEnable vhost-user mode
    UNIX domain socket is provided by -s option
  --print-capabilities\tprint back-end capabilities in JSON format,
    only meaningful for vhost-user mode
  --repair-path PATH\tpath for passt-repair(1)
    default: append '.repair' to UNIX domain path
  -F, --fd FD\t\tUse FD as pre-opened connected socket
";

const PASTA_TRANSPORT: &str = "\
  -I, --ns-ifname NAME\tnamespace interface name
    default: same interface name as external one
  -F, --fd FD\t\tUse FD as pre-opened connected socket
";

const ADDRESSES: &str = "\
  -p, --pcap FILE\tLog tap-facing traffic to pcap file
  -P, --pid FILE\tWrite own PID to the given file
  -m, --mtu MTU\tAssign MTU via DHCP/NDP
    a zero value disables assignment
    default: 65520: maximum 802.3 MTU minus 802.3 header
                    length, rounded to 32 bits (IPv4 words)
  -a, --address ADDR\tAssign IPv4 or IPv6 address ADDR
    can be specified zero to two times (for IPv4 and IPv6)
    default: use addresses from interface with default route
  -n, --netmask MASK\tAssign IPv4 MASK, dot-decimal or bits
    default: netmask from matching address on the host
  -M, --mac-addr ADDR\tUse source MAC address ADDR
    default: 9a:55:9a:55:9a:55 (locally administered)
  -g, --gateway ADDR\tPass IPv4 or IPv6 address as gateway
    default: gateway from interface with default route
  -i, --interface NAME\tInterface for addresses and routes
    default: from --outbound-if4 and --outbound-if6, if any
             otherwise interface with first default route
  -o, --outbound ADDR\tBind to address as outbound source
    can be specified zero to two times (for IPv4 and IPv6)
    default: use source address from routing tables
  --outbound-if4 NAME\tBind to outbound interface for IPv4
    default: use interface from default route
  --outbound-if6 NAME\tBind to outbound interface for IPv6
    default: use interface from default route
  -D, --dns ADDR\tUse IPv4 or IPv6 address as DNS
    can be specified multiple times
    a single 'none' option disables DNS information
";

const PASST_DNS: &str = "\
    default: use addresses from /etc/resolv.conf
  -S, --search LIST\tSpace-separated list, search domains
    a single 'none' option disables the DNS search list
  -H, --hostname NAME \tHostname to configure client with
  --fqdn NAME\t\tFQDN to configure client with
    default: use search list from /etc/resolv.conf
  --no-dhcp-dns\tNo DNS list in DHCP/DHCPv6/NDP
  --no-dhcp-search\tNo list in DHCP/DHCPv6/NDP
";

const PASTA_DNS: &str = "\
    default: don't use any addresses
  -S, --search LIST\tSpace-separated list, search domains
    a single 'none' option disables the DNS search list
  -H, --hostname NAME \tHostname to configure client with
  --fqdn NAME\t\tFQDN to configure client with
    default: don't use any search list
  --dhcp-dns\t\tPass DNS list via DHCP/DHCPv6/NDP
  --dhcp-search\tPass list via DHCP/DHCPv6/NDP
";

const TRANSLATION_AND_SWITCHES: &str = "\
  --map-host-loopback ADDR\tTranslate ADDR to refer to host
    can be specified zero to two times (for IPv4 and IPv6)
    default: gateway address
  --map-guest-addr ADDR\tTranslate ADDR to guest's address
    can be specified zero to two times (for IPv4 and IPv6)
    default: none
  --dns-forward ADDR\tForward DNS queries sent to ADDR
    can be specified zero to two times (for IPv4 and IPv6)
    default: don't forward DNS queries
  --dns-host ADDR\tHost nameserver to direct queries to
    can be specified zero to two times (for IPv4 and IPv6)
    default: first nameserver from host's /etc/resolv.conf
  --no-tcp\t\tDisable TCP protocol handler
  --no-udp\t\tDisable UDP protocol handler
  --no-icmp\t\tDisable ICMP/ICMPv6 protocol handler
  --no-dhcp\t\tDisable DHCP server
  --no-ndp\t\tDisable NDP responses
  --no-dhcpv6\t\tDisable DHCPv6 server
  --no-ra\t\tDisable router advertisements
  --freebind\t\tBind to any address for forwarding
  --no-map-gw\t\tDon't map gateway address to host
  -4, --ipv4-only\tEnable IPv4 operation only
  -6, --ipv6-only\tEnable IPv6 operation only
";

const PASST_PORTS: &str = "\
  -1, --one-off\tQuit after handling one single client
  -t, --tcp-ports SPEC\tTCP port forwarding to guest
    can be specified multiple times
    SPEC can be:
      'none': don't forward any ports
      'all': forward all unbound, non-ephemeral ports
      a comma-separated list, optionally ranged with '-'
        and optional target ports after ':', with optional
        address specification suffixed by '/' and optional
        interface prefixed by '%'. Ranges can be reduced by
        excluding ports or ranges prefixed by '~'
        Examples:
        -t 22\t\tForward local port 22 to 22 on guest
        -t 22:23\tForward local port 22 to 23 on guest
        -t 22,25\tForward ports 22, 25 to ports 22, 25
        -t 22-80  \tForward ports 22 to 80
        -t 22-80:32-90\tForward ports 22 to 80 to
\t\t\tcorresponding port numbers plus 10
        -t 192.0.2.1/5\tBind port 5 of 192.0.2.1 to guest
        -t 5-25,~10-20\tForward ports 5 to 9, and 21 to 25
        -t ~25\t\tForward all ports except for 25
    default: none
  -u, --udp-ports SPEC\tUDP port forwarding to guest
    SPEC is as described for TCP above
    default: none
";

const PASTA_PORTS: &str = "\
  -t, --tcp-ports SPEC\tTCP port forwarding to namespace
    can be specified multiple times
    SPEC can be:
      'none': don't forward any ports
      'auto': forward all ports currently bound in namespace
      a comma-separated list, optionally ranged with '-'
        and optional target ports after ':', with optional
        address specification suffixed by '/' and optional
        interface prefixed by '%'. Examples:
        -t 22\tForward local port 22 to port 22 in netns
        -t 22:23\tForward local port 22 to port 23
        -t 22,25\tForward ports 22, 25 to ports 22, 25
        -t 22-80\tForward ports 22 to 80
        -t 22-80:32-90\tForward ports 22 to 80 to
\t\t\tcorresponding port numbers plus 10
        -t 192.0.2.1/5\tBind port 5 of 192.0.2.1 to namespace
        -t 5-25,~10-20\tForward ports 5 to 9, and 21 to 25
        -t ~25\t\tForward all bound ports except for 25
    default: auto
    IPv6 bound ports are also forwarded for IPv4
  -u, --udp-ports SPEC\tUDP port forwarding to namespace
    SPEC is as described for TCP above
    default: auto
    IPv6 bound ports are also forwarded for IPv4
    unless specified, with '-t auto', UDP ports with numbers
    corresponding to forwarded TCP port numbers are
    forwarded too
  -T, --tcp-ns SPEC\tTCP port forwarding to init namespace
    SPEC is as described above
    default: auto
  -U, --udp-ns SPEC\tUDP port forwarding to init namespace
    SPEC is as described above
    default: auto
  --host-lo-to-ns-lo\tTranslate host-loopback forwards to
\t\t\tnamespace loopback
  --userns NSPATH \tTarget user namespace to join
  --netns PATH|NAME\tTarget network namespace to join
  --netns-only\t\tDon't join existing user namespace
    implied if PATH or NAME are given without --userns
  --no-netns-quit\tDon't quit if filesystem-bound target
  \t\t\tnetwork namespace is deleted
  --config-net\t\tConfigure tap interface in namespace
  --no-copy-routes\tDEPRECATED:
\t\t\tDon't copy all routes to namespace
  --no-copy-addrs\tDEPRECATED:
\t\t\tDon't copy all addresses to namespace
  --ns-mac-addr ADDR\tSet MAC address on tap interface
  --no-splice\t\tDisable inbound socket splicing
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_first_line_is_prog_and_version() {
        let text = version(Mode::Pasta);
        let first = text.lines().next().unwrap();
        assert_eq!(first, format!("pasta {}", env!("CARGO_PKG_VERSION")));
        assert!(version(Mode::Passt).starts_with("passt "));
        assert!(text.contains("passt-rs"));
    }

    #[test]
    fn usage_is_mode_specific() {
        let pasta = usage(Mode::Pasta);
        let passt = usage(Mode::Passt);
        assert!(pasta.starts_with("Usage: pasta [OPTION]... [COMMAND] [ARGS]...\n"));
        assert!(passt.starts_with("Usage: passt [OPTION]...\n"));
        assert!(pasta.contains("--config-net") && !passt.contains("--config-net"));
        assert!(passt.contains("--socket") && !pasta.contains("--socket"));
    }

    #[test]
    fn usage_mentions_every_option_of_the_mode() {
        for mode in [Mode::Passt, Mode::Pasta] {
            let text = usage(mode);
            for spec in super::super::table::option_table()
                .iter()
                .filter(|s| s.modes.includes(mode))
                // Deprecated and undocumented, as upstream.
                .filter(|s| s.long != "stderr")
                // Accepted by passt as a no-op, but documented for pasta only.
                .filter(|s| !(mode == Mode::Passt && s.long == "no-splice"))
            {
                assert!(
                    text.contains(&format!("--{}", spec.long)),
                    "{mode:?} --{}",
                    spec.long
                );
            }
        }
    }
}
