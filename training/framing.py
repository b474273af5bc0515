"""`python -m training.framing` moved to training.measure.framing;
this alias goes in the next release."""

from training.measure.framing import main

if __name__ == "__main__":
    raise SystemExit(main())
