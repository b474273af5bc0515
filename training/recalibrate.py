"""`python -m training.recalibrate` moved to training.adapt.recalibrate;
this alias goes in the next release."""

from training.adapt.recalibrate import main

if __name__ == "__main__":
    raise SystemExit(main())
