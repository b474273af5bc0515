"""`python -m training.train` moved to training.fit.train; this alias goes in the next release."""

from training.fit.train import main

if __name__ == "__main__":
    raise SystemExit(main())
