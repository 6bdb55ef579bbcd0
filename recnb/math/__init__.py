"""Math primitives: the formulas the notebooks teach, as small tested functions."""
