"""`python -m training.crop_check` moved to training.measure.crop_check;
this alias goes in the next release."""

from training.measure.crop_check import main

if __name__ == "__main__":
    raise SystemExit(main())
