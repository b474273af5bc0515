"""`python -m training.evaluate` moved to training.measure.evaluate;
this alias goes in the next release."""

from training.measure.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
