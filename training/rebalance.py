"""`python -m training.rebalance` moved to training.fit.retrain_classifier;
this alias goes in the next release."""

from training.fit.retrain_classifier import main

if __name__ == "__main__":
    raise SystemExit(main())
