"""`python -m training.detector_weights` moved to training.ship.detector_weights;
this alias goes in the next release."""

from training.ship.detector_weights import main

if __name__ == "__main__":
    raise SystemExit(main())
