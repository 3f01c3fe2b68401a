//! Runs the fake API server until killed and prints a kubeconfig path for poking at it by hand:
//! `cargo run -p sluice-fake-kube --example serve -- DIR`.

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let kube = sluice_fake_kube::FakeKube::start();
    let config = kube.kubeconfig(&dir);
    println!("{}", config.display());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
