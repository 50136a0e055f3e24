//! jitbroker: see docs/broker.md.
fn main() {
    eprintln!("jitbroker: not built yet");
    std::process::exit(2);
}
