//! `passt`: a guest on a UNIX stream socket (qemu `-netdev stream`). The mode
//! may also come from argv\[0\] (a symlink named `pasta` runs pasta).
fn main() {
    std::process::exit(passt_rs::main(passt_rs::conf::Mode::Passt));
}
