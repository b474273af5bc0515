"""`python -m training.balance` moved to training.measure.choose_prior_weight;
this alias goes in the next release."""

from training.measure.choose_prior_weight import main

if __name__ == "__main__":
    raise SystemExit(main())
