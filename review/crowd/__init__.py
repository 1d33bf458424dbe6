"""Several annotators per item.

- :mod:`review.crowd.consensus`: one label per item from many (majority vote, Dawid-Skene, CROWDLAB, a
  text prior; the default picks one per dataset by held-out likelihood), item and annotator quality (pure).
- :mod:`review.crowd.annotators`: annotator and reviewer statistics read from the database.
- :mod:`review.crowd.labeling`: the label queue (ActiveLab order, one label per annotator and item).
- :mod:`review.crowd.gold`: the golden set and accuracy per annotator on it.
"""
