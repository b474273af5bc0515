"""`python -m training.export` moved to training.fit.export; this alias goes in the next release."""

from training.fit.export import main

if __name__ == "__main__":
    raise SystemExit(main())
