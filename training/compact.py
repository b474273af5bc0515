"""`python -m training.compact` moved to training.ship.int8_weights;
this alias goes in the next release."""

from training.ship.int8_weights import main

if __name__ == "__main__":
    raise SystemExit(main())
