//! SHA-256 of a recording as it is written, and of a recording as it is rebuilt.
//!
//! RustCrypto's `sha2` (0.10, the version jitctl and jitbroker already use): pure Rust, and on
//! x86_64 it uses the CPU's SHA extensions when it has them (runtime detection). Every byte a
//! recorded command writes is hashed once, on the supervisor's one thread: orion's portable
//! code (in jitrun's tree through pasetors) hashed about 230 MB/s here and was a third of a
//! recorded run's CPU time; with the SHA extensions this is several times faster
//! (docs/benchmarks.md, "Session recording").

use sha2::Digest;

#[derive(Clone, Debug, Default)]
pub struct Sha256(sha2::Sha256);

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256(sha2::Sha256::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything so far, as 64 lowercase hex digits; the state is kept, so
    /// more data can follow (a running hash).
    pub fn hex(&self) -> String {
        hex(&self.0.clone().finalize())
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_and_running_state() {
        let mut h = Sha256::new();
        assert_eq!(
            h.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(
            h.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // hex() does not end the hash
        h.update(b"dbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
        assert_eq!(
            h.hex(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }
}
