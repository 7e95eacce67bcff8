//! TODO: /dev/net/tun (being written)
