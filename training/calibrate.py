"""`python -m training.calibrate` moved to training.ship.calibrate;
this alias goes in the next release."""

from training.ship.calibrate import main

if __name__ == "__main__":
    raise SystemExit(main())
