"""Ferrovirt's benchmarks: Ferrovirt vs libvirt vs raw QEMU on the same QEMU
and the same test guest. Run as `python3 -m fvbench SUITE [--quick]` from
bench/ (see __main__.py and docs/benchmarks*.md)."""
