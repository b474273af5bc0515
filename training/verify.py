"""`python -m training.verify` moved to training.measure.verify;
this alias goes in the next release."""

from training.measure.verify import main

if __name__ == "__main__":
    raise SystemExit(main())
