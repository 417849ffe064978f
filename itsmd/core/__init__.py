"""The pure domain core: no I/O, no clock reads; every decision returns a reason."""
