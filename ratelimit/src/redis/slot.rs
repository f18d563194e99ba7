//! Redis Cluster key slots, to group a batch by the node that owns it.

/// The Redis Cluster slot of a key: the CRC16 of its hash tag (what lies
/// between the first `{` and the next `}`, when not empty), else of the
/// whole key.
pub(super) fn hash_slot(key: &[u8]) -> u16 {
    let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tag.unwrap_or(key)) % 16_384
}

/// CRC-16/XMODEM, the checksum of Redis Cluster's key slots.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::{crc16, hash_slot};

    #[test]
    fn slots_follow_redis_cluster() {
        // The reference value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        // Keys with the same tag share a slot, as CLUSTER KEYSLOT says.
        assert_eq!(hash_slot(b"rl:{user:1}"), hash_slot(b"rl:{user:1}:seq"));
        assert_eq!(hash_slot(b"rl:{user:1}"), hash_slot(b"user:1"));
        assert_eq!(hash_slot(b"foo"), 12_182);
        assert_eq!(hash_slot(b"{}foo"), crc16(b"{}foo") % 16_384, "an empty tag hashes it all");
    }
}
