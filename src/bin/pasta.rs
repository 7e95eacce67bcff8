//! `pasta`: a tap device in a network namespace. The mode may also come from
//! argv\[0\] (a symlink named `passt` runs passt).
fn main() {
    std::process::exit(passt_rs::main(passt_rs::conf::Mode::Pasta));
}
