//! A fake `qemu-system-x86_64` for the daemon's tier-3 tests; see
//! `ferrovirt_testkit::fake_qemu`.

fn main() -> std::process::ExitCode {
    ferrovirt_testkit::fake_qemu::main()
}
