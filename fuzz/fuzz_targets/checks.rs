//! What several fuzz targets check in the frames they get back: shared
//! here so each target includes it with `mod checks;`.

/// RFC 1071 sum of 16-bit big-endian words, odd byte padded with zero.
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}
