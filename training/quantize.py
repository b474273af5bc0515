"""`python -m training.quantize` moved to training.ship.int8_compute;
this alias goes in the next release."""

from training.ship.int8_compute import main

if __name__ == "__main__":
    raise SystemExit(main())
