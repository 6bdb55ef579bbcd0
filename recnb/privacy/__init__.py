"""Privacy for recommenders, with numbers: anonymisation and its limits, differential privacy
on aggregates and in training (DP-SGD), and federated averaging.

- :mod:`recnb.privacy.anonymity` -- uniqueness on quasi-identifiers, k-anonymity, generalisation;
- :mod:`recnb.privacy.linkage` -- re-identifying users from a few known ratings;
- :mod:`recnb.privacy.laplace` -- the Laplace mechanism, composition of privacy budgets,
  differentially private popularity;
- :mod:`recnb.privacy.accountant` -- the RDP accountant of the subsampled Gaussian mechanism;
- :mod:`recnb.privacy.dp_sgd` -- per-example gradients (``torch.func``), clipping, Gaussian noise;
- :mod:`recnb.privacy.federated` -- a one-process simulation of federated averaging (FedAvg).

The DP-SGD-trained embedding model lives in :mod:`recnb.models.private_embedding`.
"""
