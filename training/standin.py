"""`python -m training.standin` moved to training.adapt.standin;
this alias goes in the next release."""

from training.adapt.standin import main

if __name__ == "__main__":
    raise SystemExit(main())
