"""Privacy for recommenders, with numbers: anonymisation and its limits, differential privacy
on aggregates and in training (DP-SGD), and federated averaging.

- :mod:`recnb.studies.privacy.anonymity` -- uniqueness on quasi-identifiers, k-anonymity, generalisation;
- :mod:`recnb.studies.privacy.linkage` -- re-identifying users from a few known ratings;
- :mod:`recnb.studies.privacy.laplace` -- the Laplace mechanism, composition of privacy budgets,
  differentially private popularity;
- :mod:`recnb.studies.privacy.federated` -- a one-process simulation of federated averaging (FedAvg).

DP-SGD itself is training machinery, one layer below the models: per-example gradients, clipping
and noise in :mod:`recnb.training.dp_sgd`, the RDP accountant in :mod:`recnb.training.accountant`;
the DP-SGD-trained embedding model lives in :mod:`recnb.models.private_embedding`.
"""
